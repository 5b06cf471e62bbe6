/**
 * The daemon process: socket and state dir handling, health, graceful and
 * bounded shutdown, logs and metrics, and the embedded backend by default.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { type ServiceError, status } from '@grpc/grpc-js';
import { assertContractV2, embeddedDirectoryLayer } from '../support/contract';
import { startDaemon, TestDaemon, unpackFixture } from '../support/daemon';
import { cliPath, fixture } from '../support/fixtures';
import { listFlatDescriptor, makeTempDir } from '../support/kernel-mounts';
import { startUpstream } from '../support/upstream';

const VM = 'erofs-vmdk';

function serveOnce(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, 'serve', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('socket and state directory', () => {
  test('socket mode 0660 (parent dir created), root dir 0700; a stale socket is replaced', async () => {
    const up = await startUpstream();
    const tmp = makeTempDir();
    try {
      const socket = path.join(tmp, 'deep', 'er', 'd.sock');
      // A stale socket: bound by a process that is gone (nothing accepts on it).
      fs.mkdirSync(path.dirname(socket), { recursive: true });
      execFileSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(socket)})`]);
      assert.ok(fs.lstatSync(socket).isSocket());
      const d = new TestDaemon({ upstream: up, config: { address: socket } });
      try {
        // TestDaemon's client targets its own socket name; point a second check at the configured one.
        await startWithSocket(d, socket);
        assert.equal(fs.statSync(socket).mode & 0o777, 0o660);
        assert.equal(fs.statSync(d.root).mode & 0o777, 0o700);
      } finally {
        await d.close();
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      await up.close();
    }
  });

  test('refuses to remove a non-socket or a live socket at the address', async () => {
    const tmp = makeTempDir();
    const server = net.createServer();
    try {
      const file = path.join(tmp, 'not-a-socket');
      fs.writeFileSync(file, 'precious');
      const r = serveOnce(['--backend', 'remote', '--remote-address', '/nonexistent.sock', '--root', path.join(tmp, 'root'), '--address', file]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /exists and is not a socket; refusing to remove it/);
      assert.equal(fs.readFileSync(file, 'utf8'), 'precious');

      const live = path.join(tmp, 'live.sock');
      await new Promise<void>((resolve) => server.listen(live, resolve));
      const r2 = serveOnce(['--backend', 'remote', '--remote-address', '/nonexistent.sock', '--root', path.join(tmp, 'root'), '--address', live]);
      assert.equal(r2.status, 2);
      assert.match(r2.stderr, /another process is already serving on this socket/);
      assert.ok(fs.lstatSync(live).isSocket());
    } finally {
      server.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

/** Starts `d` whose config points at another socket path than d.socket (for socket-path tests). */
async function startWithSocket(d: TestDaemon, socket: string): Promise<void> {
  fs.symlinkSync(socket, d.socket); // the test client dials d.socket
  await d.start();
}

describe('health, logs and metrics', () => {
  test('grpc.health.v1 on the same socket; debug logs with rpc, key, namespace, duration; Prometheus metrics', async () => {
    const up = await startUpstream();
    const d = await startDaemon({ upstream: up, metrics: true, logLevel: 'debug' });
    try {
      assert.equal(await d.client.checkHealth(''), 'SERVING');
      assert.equal(await d.client.checkHealth('containerd.services.snapshots.v1.Snapshots'), 'SERVING');
      await assert.rejects(d.client.checkHealth('no.such.Service'), (e: ServiceError) => e.code === status.NOT_FOUND);

      const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic') });
      await d.client.prepare({ snapshotter: VM, key: 'default/20/ctr', parent: img.top });
      await assert.rejects(d.client.stat({ snapshotter: VM, key: 'default/21/missing' }));

      const rpcLine = d.logRecords().find((r) => r.msg === 'rpc' && r.rpc === 'Prepare' && r.key === 'default/20/ctr');
      assert.ok(rpcLine, 'a debug line for the Prepare');
      assert.equal(rpcLine.namespace, 'default');
      assert.equal(typeof rpcLine.duration_ms, 'number');
      assert.equal(rpcLine.level, 20);

      const text = await d.scrapeMetrics();
      assert.match(text, /erofs_vmdk_grpc_request_duration_seconds_count\{rpc="Prepare"\} [1-9]/);
      assert.match(text, /erofs_vmdk_grpc_errors_total\{rpc="Stat",code="NOT_FOUND"\} 1/);
      assert.match(text, /erofs_vmdk_rewrites_total\{outcome="flat"\} 1/);
      assert.match(text, /erofs_vmdk_rewrites_total\{outcome="passthrough"\} [1-9]/, 'extract Prepares pass through');
      assert.match(text, /erofs_vmdk_store_descriptors 1/);
      assert.match(text, /erofs_vmdk_store_fsmeta 0/);

      // The remote backend remembers the upstream's Mounts answer: the second Mounts is a hit.
      await d.client.mounts({ snapshotter: VM, key: 'default/20/ctr' });
      await d.client.mounts({ snapshotter: VM, key: 'default/20/ctr' });
      const after = await d.scrapeMetrics();
      assert.match(after, /erofs_vmdk_upstream_mounts_cache_total\{result="miss"\} 1/);
      assert.match(after, /erofs_vmdk_upstream_mounts_cache_total\{result="hit"\} 1/);
    } finally {
      await d.close();
      await up.close();
    }
  });
});

describe('SIGTERM / SIGINT', () => {
  test('in-flight calls finish, then exit 0 with state kept', async () => {
    const up = await startUpstream();
    const d = await startDaemon({ upstream: up });
    try {
      const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('single') });
      up.delayNext('Stat', 2500);
      const inflight = d.client.stat({ snapshotter: VM, key: img.top });
      await new Promise((r) => setTimeout(r, 300)); // the call is now waiting on the upstream
      const exit = d.stop('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      // Shutdown has begun: new calls are refused while the in-flight one is still running.
      await assert.rejects(d.client.stat({ snapshotter: VM, key: img.top }), (e: ServiceError) => e.code === status.UNAVAILABLE);
      const info = await inflight;
      assert.equal(info.name, img.top, 'the in-flight call completed');
      assert.deepEqual(await exit, { code: 0, signal: null });
      assert.ok(fs.existsSync(path.join(d.root, 'state.db')), 'state is kept');
      await d.start();
      assert.equal((await d.client.stat({ snapshotter: VM, key: img.top })).name, img.top);
      assert.deepEqual(await d.stop('SIGINT'), { code: 0, signal: null });
    } finally {
      await d.close();
      await up.close();
    }
  });

  test('shutdown is bounded: a call still running after shutdown_timeout_ms is cancelled, exit 0', async () => {
    const up = await startUpstream();
    const d = await startDaemon({ upstream: up, config: { shutdown_timeout_ms: 300 } });
    try {
      const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('single') });
      up.delayNext('Stat', 30_000);
      const inflight = d.client.stat({ snapshotter: VM, key: img.top }).then(
        () => 'answered',
        (e: ServiceError) => status[e.code],
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await d.stop('SIGTERM'), { code: 0, signal: null });
      assert.ok(['CANCELLED', 'UNAVAILABLE', 'INTERNAL'].includes(await inflight), 'the stuck call was cut off');
    } finally {
      await d.close();
      await up.close();
    }
  });
});

describe('embedded backend (the default)', () => {
  test('serve with the embedded backend flattens an image unpacked by the EROFS differ into one contract v2 entry', async () => {
    const d = await startDaemon({ backend: 'embedded', config: { embedded: { mount_style: 'manager' } } });
    try {
      const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic'), differ: 'copy' });
      const mounts = await d.client.prepare({ snapshotter: VM, key: 'default/20/ctr', parent: img.top });
      const descriptor = assertContractV2(mounts, embeddedDirectoryLayer(d.root));
      assert.equal(await listFlatDescriptor(descriptor), fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8'));
    } finally {
      await d.close();
    }
  });
});
