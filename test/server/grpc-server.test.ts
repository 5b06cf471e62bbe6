/**
 * The gRPC server in-process over a real unix socket, with a scripted core
 * (a ProfiledSnapshotter that records what reaches it and throws on demand):
 * error kinds -> gRPC codes, unknown errors -> Internal, CallContext, List
 * streaming in batches, validation before the core is reached.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../api/gen/grpc/health/v1/health';
import pino from 'pino';
import type { CallContext, SnapshotInfo } from '../../src/backend/backend';
import { type ErrorKind, SnapshotterError } from '../../src/errdefs';
import { type RunningServer, startSnapshotsServer } from '../../src/server/server';
import type { ProfiledSnapshotter } from '../../src/snapshotter/snapshotter';
import { SnapshotsTestClient } from '../support/daemon';
import { makeTempDir } from '../support/kernel-mounts';

const kinds: [ErrorKind, status][] = [
  ['InvalidArgument', status.INVALID_ARGUMENT],
  ['NotFound', status.NOT_FOUND],
  ['AlreadyExists', status.ALREADY_EXISTS],
  ['FailedPrecondition', status.FAILED_PRECONDITION],
  ['Unavailable', status.UNAVAILABLE],
  ['Unimplemented', status.UNIMPLEMENTED],
  ['ResourceExhausted', status.RESOURCE_EXHAUSTED],
  ['DeadlineExceeded', status.DEADLINE_EXCEEDED],
  ['Internal', status.INTERNAL],
];

function info(name: string): SnapshotInfo {
  return { name, parent: '', kind: 'committed', labels: {}, createdAt: new Date(1000), updatedAt: new Date(2000) };
}

/** Records every call; `stat(key)` throws per key: an ErrorKind name, "plain" (a bare Error), "grpc-code". */
class ScriptedCore implements ProfiledSnapshotter {
  readonly seen: { rpc: string; ctx: CallContext; profile: string; args: unknown[] }[] = [];
  private note(rpc: string, ctx: CallContext, profile: string, ...args: unknown[]) {
    this.seen.push({ rpc, ctx, profile, args });
  }
  async prepare(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>) {
    this.note('prepare', ctx, profile, key, parent, labels);
    return [{ type: 'bind', source: '/x', target: '', options: ['rw', 'rbind'] }];
  }
  async view(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>) {
    this.note('view', ctx, profile, key, parent, labels);
    return [];
  }
  async mounts(ctx: CallContext, profile: string, key: string) {
    this.note('mounts', ctx, profile, key);
    return [];
  }
  async commit(ctx: CallContext, profile: string, name: string, key: string, labels: Record<string, string>, parent: string) {
    this.note('commit', ctx, profile, name, key, labels, parent);
  }
  async remove(ctx: CallContext, profile: string, key: string) {
    this.note('remove', ctx, profile, key);
  }
  async stat(ctx: CallContext, profile: string, key: string): Promise<SnapshotInfo> {
    this.note('stat', ctx, profile, key);
    if (key === 'plain') throw new Error('disk on fire');
    if (key === 'grpc-code') throw Object.assign(new Error('upstream said permission denied'), { grpcCode: status.PERMISSION_DENIED });
    if (kinds.some(([k]) => k === key)) throw new SnapshotterError(key as ErrorKind, `scripted ${key}`);
    return info(key);
  }
  async update(ctx: CallContext, profile: string, i: SnapshotInfo, paths: string[]) {
    this.note('update', ctx, profile, i, paths);
    return i;
  }
  async *list(ctx: CallContext, profile: string, filters: string[]): AsyncIterable<SnapshotInfo> {
    this.note('list', ctx, profile, filters);
    for (let i = 0; i < 250; i++) yield info(`s${i}`);
  }
  async usage(ctx: CallContext, profile: string, key: string) {
    this.note('usage', ctx, profile, key);
    return { size: 2 ** 40 + 1, inodes: 7 };
  }
  async cleanup(ctx: CallContext, profile: string) {
    this.note('cleanup', ctx, profile);
  }
  async close() {}
}

describe('Snapshots gRPC server', () => {
  let dir: string;
  let core: ScriptedCore;
  let server: RunningServer;
  let client: SnapshotsTestClient;
  before(async () => {
    dir = makeTempDir();
    core = new ScriptedCore();
    server = await startSnapshotsServer({ address: path.join(dir, 's.sock'), snapshotter: core, logger: pino({ level: 'silent' }) });
    client = new SnapshotsTestClient(server.address);
  });
  after(async () => {
    client.close();
    await server.shutdown(1000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every SnapshotterError kind maps to its gRPC code with the message', async () => {
    for (const [kind, code] of kinds) {
      await assert.rejects(client.stat({ snapshotter: 'p', key: kind }), (e: ServiceError) => e.code === code && e.details === `scripted ${kind}`);
    }
  });

  test('an unexpected error is Internal with its message; an exact upstream code passes through', async () => {
    await assert.rejects(client.stat({ snapshotter: 'p', key: 'plain' }), (e: ServiceError) => e.code === status.INTERNAL && /disk on fire/.test(e.details));
    await assert.rejects(client.stat({ snapshotter: 'p', key: 'grpc-code' }), (e: ServiceError) => e.code === status.PERMISSION_DENIED);
  });

  test('the request reaches the core with profile, namespace and all fields (Commit parent = field 5)', async () => {
    await client.commit({ snapshotter: 'prof', name: 'n', key: 'k', labels: { a: 'b' }, parent: 'rebase-onto' }, { namespace: 'k8s.io' });
    const c = core.seen.at(-1)!;
    assert.equal(c.rpc, 'commit');
    assert.equal(c.profile, 'prof');
    assert.equal(c.ctx.namespace, 'k8s.io');
    assert.ok(c.ctx.signal instanceof AbortSignal);
    assert.deepEqual(c.args, ['n', 'k', { a: 'b' }, 'rebase-onto']);
    await client.cleanup({ snapshotter: 'prof' }, { namespace: null });
    assert.equal(core.seen.at(-1)!.ctx.namespace, undefined, 'GC calls come without a namespace');
  });

  test('Update passes the field mask; Usage keeps 64-bit sizes', async () => {
    const updated = await client.update({ snapshotter: 'p', info: { name: 'x', labels: { k: 'v' } }, paths: ['labels.k'] });
    assert.equal(updated.name, 'x');
    assert.deepEqual(core.seen.at(-1)!.args[1], ['labels.k']);
    assert.deepEqual(await client.usage({ snapshotter: 'p', key: 'x' }), { size: 2 ** 40 + 1, inodes: 7 });
  });

  test('List streams in batches of 100', async () => {
    const messages: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = client.raw.list({ snapshotter: 'p', filters: ['kind==committed'] }, SnapshotsTestClient.metadata());
      s.on('data', (m: { info: unknown[] }) => messages.push(m.info.length));
      s.on('error', reject);
      s.on('end', resolve);
    });
    assert.deepEqual(messages, [100, 100, 50]);
    assert.deepEqual(core.seen.at(-1)!.args, [['kind==committed']]);
    const all = await client.list({ snapshotter: 'p' });
    assert.equal(all[249].name, 's249');
    assert.equal(all[0].createdAt?.getTime(), 1000);
  });

  test('invalid requests never reach the core', async () => {
    const before = core.seen.length;
    await assert.rejects(client.prepare({ snapshotter: 'p', key: '' }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);
    await assert.rejects(client.prepare({ snapshotter: 'p', key: 'a\0b' }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT && /NUL/.test(e.details));
    await assert.rejects(client.update({ snapshotter: 'p', info: { name: 'x' }, paths: ['kind'] }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);
    await assert.rejects(client.stat({ snapshotter: 'p', key: 'x' }, { namespace: '-bad-' }), (e: ServiceError) => e.code === status.INVALID_ARGUMENT);
    assert.equal(core.seen.length, before);
  });

  test('the socket is 0660', () => {
    assert.equal(fs.statSync(server.address).mode & 0o777, 0o660);
  });
});

describe('grpc.health.v1', () => {
  test('Watch streams SERVING, then NOT_SERVING when shutdown begins', async () => {
    const dir = makeTempDir();
    const server = await startSnapshotsServer({ address: path.join(dir, 'h.sock'), snapshotter: new ScriptedCore(), logger: pino({ level: 'silent' }) });
    const health = new HealthClient(`unix:${server.address}`, credentials.createInsecure());
    try {
      const seen: string[] = [];
      const ended = new Promise<void>((resolve) => {
        const stream = health.watch({ service: '' });
        stream.on('data', (r: { status: number }) => {
          seen.push(HealthCheckResponse_ServingStatus[r.status]);
          if (seen.length === 1) void server.shutdown(1000);
        });
        stream.on('error', () => resolve());
        stream.on('end', () => resolve());
      });
      await ended;
      assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    } finally {
      health.close();
      await server.shutdown(100);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
