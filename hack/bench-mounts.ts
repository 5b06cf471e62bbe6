/**
 * Mounts latency through the daemon vs. directly against the upstream
 * snapshotter, for images of 1, 16 and 128 layers, warm and cold.
 *
 *   hack/bench-mounts [--iterations N] [--cold-iterations N] [--layers 1,16,128] [--backend remote,embedded,server]
 *                     [--upstream process|in-process] [--client http2|grpc-js]
 *
 * Setup: the test upstream (test/support/upstream.ts; by default in a child
 * process of its own, see UpstreamMode) returns
 * containerd 2.x EROFS mounts (one erofs lower per layer, no fsmeta, so the
 * daemon merges the metadata natively); the daemon is the real
 * `erofs-vmdk serve` child process at its default log level, with
 *   remote:   the remote backend pointing at that upstream (two gRPC hops per call), or
 *   embedded: the embedded backend ("manager" mount style), the layers unpacked into it
 *             by playing the EROFS differ (one hop; the upstream then only serves as the
 *             "plain snapshotter" reference answering the same mount shapes).
 *   server:   (cost of the gRPC server layer alone) src/server in this process around a
 *             trivial core that answers the upstream's own mounts; warm only.
 * Layers are copies of the basic fixture's four blobs, cycled.
 * Both sides are timed from the same client over unix sockets, one call at a
 * time: by default a lean gRPC client over node:http2 (hack/lean-grpc-client.ts;
 * containerd's Go client costs microseconds, grpc-js's client adds ~0.2 ms and
 * a tail of its own to both columns), with `--client grpc-js` the grpc-js
 * client of the tests. Each side's answer is checked once against the grpc-js
 * client's before timing, and every timed call must end with status OK. Before each timed call the benchmark empties its own young
 * generation (a minor GC, outside the timing): grpc-js clients keep a quarter
 * of what they allocate alive past one scavenge, so this process's scavenges
 * take 5-15 ms here and would otherwise land at random in either column's p99.
 * containerd, the real client, is a Go program with a concurrent collector;
 * the daemon and the upstream are measured with their own GC as it comes.
 *   warm: the descriptor exists (the steady state: every Mounts of a running container).
 *   cold: <root>/vmdk and <root>/fsmeta are emptied before every call, so each
 *         Mounts rebuilds the merged fsmeta and the descriptor.
 * Two more figures put the daemon's p99 in context:
 *   floor:   the same client against a bare grpc-js echo server in its own process
 *            (no protobuf, no handler work), timed in the same pattern: what one
 *            gRPC hop between two Node processes costs on this machine.
 *   handler: the daemon's own time per warm Mounts (from receiving the request to
 *            answering it), read from its Prometheus histogram, as the bucket
 *            bound under which 99% of the calls fell.
 * Prints figures only; it asserts nothing.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { credentials, Client, Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import pino from 'pino';
import { MountsRequest, MountsResponse } from '../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../api/gen/containerd/types/mount';
import { DaemonMetrics } from '../src/server/metrics';
import { startSnapshotsServer } from '../src/server/server';
import type { ProfiledSnapshotter } from '../src/snapshotter/snapshotter';
import { SnapshotsTestClient, startDaemon, unpackFixture } from '../test/support/daemon';
import { fixture } from '../test/support/fixtures';
import { makeTempDir } from '../test/support/kernel-mounts';
import { startUpstream, type TestUpstream } from '../test/support/upstream';
import { grpcFrame, LeanGrpcClient } from './lean-grpc-client';

/**
 * The test upstream the remote/embedded rows measure against. `process` (the
 * default) runs it in a child process of its own, like a real snapshotter
 * that containerd reaches over a unix socket. `in-process` runs it inside this
 * benchmark process, where the "direct" call never leaves one event loop (no
 * process switch, no cross-CPU wake-up), while the daemon's hop to the
 * upstream lands in the same process as the client that is waiting for it:
 * that makes the direct baseline cheaper than any real containerd ->
 * snapshotter call, and so inflates the ratio.
 */
type UpstreamMode = 'process' | 'in-process';

interface BenchUpstream {
  address: string;
  /** The upstream key of the most recent Prepare the upstream served. */
  lastPrepareKey(): Promise<string>;
  close(): Promise<void>;
}

const CHILD_ENV = 'EROFS_VMDK_BENCH_UPSTREAM_CHILD';
const ECHO_CHILD_ENV = 'EROFS_VMDK_BENCH_ECHO_CHILD';
const ECHO_PATH = '/bench.Echo/Call';

function lastPrepareKeyOf(up: TestUpstream): string {
  const call = [...up.calls].reverse().find((c) => c.rpc === 'Prepare');
  if (!call) throw new Error('the upstream has served no Prepare');
  return call.key;
}

async function startBenchUpstream(mode: UpstreamMode): Promise<BenchUpstream> {
  if (mode === 'in-process') {
    const up = await startUpstream();
    return { address: up.address, lastPrepareKey: async () => lastPrepareKeyOf(up), close: () => up.close() };
  }
  const child: ChildProcess = fork(__filename, [], { env: { ...process.env, [CHILD_ENV]: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = () =>
    new Promise<{ address?: string; key?: string; error?: string }>((resolve, reject) => {
      const onExit = () => reject(new Error('the upstream child process exited'));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.removeListener('exit', onExit);
        resolve(m as { address?: string; key?: string; error?: string });
      });
    });
  const hello = await next();
  if (!hello.address) throw new Error(`upstream child: ${hello.error ?? 'no address'}`);
  return {
    address: hello.address,
    lastPrepareKey: async () => {
      const reply = next();
      child.send({ op: 'lastPrepareKey' });
      const r = await reply;
      if (r.key === undefined) throw new Error(`upstream child: ${r.error ?? 'no key'}`);
      return r.key;
    },
    close: async () => {
      child.send({ op: 'close' });
      await exited;
    },
  };
}

/** Child side of startBenchUpstream('process'). */
async function serveUpstreamChild(): Promise<void> {
  const up = await startUpstream();
  process.on('message', (m: { op: string }) => {
    if (m.op === 'lastPrepareKey') {
      try {
        process.send!({ key: lastPrepareKeyOf(up) });
      } catch (err) {
        process.send!({ error: (err as Error).message });
      }
    } else if (m.op === 'close') {
      void up.close().then(() => process.disconnect());
    }
  });
  // The benchmark died without saying goodbye: do not outlive it.
  process.once('disconnect', () => void up.close().finally(() => process.exit(0)));
  process.send!({ address: up.address });
}

interface Stats {
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A case dir with `n` layer blobs (copies of basic's four, cycled) and layers.txt. */
function makeImage(dir: string, n: number, tag: string): string {
  const caseDir = path.join(dir, `img-${tag}-${n}`);
  fs.mkdirSync(caseDir);
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `layer${i + 1}.erofs`;
    fs.copyFileSync(fixture('basic', `layer${(i % 4) + 1}.erofs`), path.join(caseDir, name));
    names.push(name);
  }
  fs.writeFileSync(path.join(caseDir, 'layers.txt'), `${names.join('\n')}\n`);
  return caseDir;
}

type ClientKind = 'http2' | 'grpc-js';

const MOUNTS_PATH = '/containerd.services.snapshots.v1.Snapshots/Mounts';

interface MountsCaller {
  /** The timed call. */
  call(): Promise<unknown>;
  close(): void;
}

/**
 * Mounts of one key on one socket with the chosen client. The lean client's
 * answer is decoded once and must equal the grpc-js client's, so the
 * benchmark never times a call that answers something else.
 */
async function mountsCaller(kind: ClientKind, socket: string, snapshotter: string, key: string, namespace: string): Promise<MountsCaller> {
  const reference = new SnapshotsTestClient(socket);
  const expected = await reference.mounts({ snapshotter, key }, { namespace });
  if (kind === 'grpc-js') return { call: () => reference.mounts({ snapshotter, key }, { namespace }), close: () => reference.close() };
  reference.close();
  const lean = new LeanGrpcClient(socket);
  const frame = grpcFrame(MountsRequest.encode({ snapshotter, key }).finish());
  const metadata = { 'containerd-namespace': namespace };
  const got = MountsResponse.decode(await lean.unary(MOUNTS_PATH, frame, metadata)).mounts;
  if (JSON.stringify(got) !== JSON.stringify(expected)) {
    lean.close();
    throw new Error(`the lean client's Mounts answer on ${socket} differs from grpc-js's`);
  }
  return { call: () => lean.unary(MOUNTS_PATH, frame, metadata), close: () => lean.close() };
}

/** V8's gc() without needing --expose-gc on the command line. */
function exposeGc(): (options: { type: 'minor' | 'major' }) => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as (options: { type: 'minor' | 'major' }) => void;
}

const gc = exposeGc();

/** Leaves this process's young generation empty so no scavenge of the client falls inside a timed call. */
function settleClientHeap(): void {
  gc({ type: 'minor' });
}

/**
 * Calls of each side before measuring. A fresh Node process (the daemon, the
 * upstream, the echo server) needs thousands of calls before its JIT and heap
 * settle: after 500 a bare echo server's p99 is still ~3x what it is after 3000.
 */
const WARMUP_CALLS = 3000;

async function measurePair(
  count: number,
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  before?: () => void,
  warmedUp?: () => Promise<void>,
): Promise<[Stats, Stats]> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < Math.min(WARMUP_CALLS, count); i++) {
    await a(); // JIT and connection warm-up, not measured
    await b();
  }
  await warmedUp?.();
  for (let i = 0; i < count; i++) {
    before?.();
    settleClientHeap();
    as.push(await time(a));
    settleClientHeap();
    bs.push(await time(b));
  }
  return [stats(as), stats(bs)];
}

/** Child side of measureFloor: a grpc-js server answering every call with a 200-byte payload. */
async function serveEchoChild(socket: string): Promise<void> {
  const server = new Server({ 'grpc.enable_channelz': 0 });
  const answer = Buffer.alloc(200);
  const raw = (b: Buffer) => b;
  server.register(ECHO_PATH, (_call: unknown, callback: (err: null, res: Buffer) => void) => callback(null, answer), raw, raw, 'unary');
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  process.send!({ ready: true });
  process.once('disconnect', () => server.forceShutdown());
}

/** One gRPC hop to an idle Node process and back, nothing else: this machine's floor for any daemon written with grpc-js. */
async function measureFloor(kind: ClientKind, tmp: string, count: number): Promise<Stats> {
  const socket = path.join(tmp, 'echo.sock');
  const child = fork(__filename, [socket], { env: { ...process.env, [ECHO_CHILD_ENV]: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', () => reject(new Error('the echo child process exited')));
  });
  const request = Buffer.alloc(64);
  let call: () => Promise<unknown>;
  let close: () => void;
  if (kind === 'http2') {
    const lean = new LeanGrpcClient(socket);
    const frame = grpcFrame(request);
    call = () => lean.unary(ECHO_PATH, frame);
    close = () => lean.close();
  } else {
    const client = new Client(`unix:${socket}`, credentials.createInsecure(), { 'grpc.enable_channelz': 0 });
    const raw = (b: Buffer) => b;
    call = () => new Promise<Buffer>((resolve, reject) => client.makeUnaryRequest(ECHO_PATH, raw, raw, request, new Metadata(), (err, res) => (err ? reject(err) : resolve(res!))));
    close = () => client.close();
  }
  try {
    const [floor] = await measurePair(count, call, async () => {});
    return floor;
  } finally {
    close();
    child.disconnect();
  }
}

/** The daemon's Mounts histogram, cumulative count per bucket bound (seconds). */
function mountsBuckets(metrics: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const line of metrics.split('\n')) {
    const m = /^erofs_vmdk_grpc_request_duration_seconds_bucket\{le="([^"]+)",rpc="Mounts"\} (\d+)$/.exec(line);
    if (m) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

/** The smallest bucket bound under which 99% of the Mounts between two scrapes fell. */
function handlerP99(before: string, after: string): string {
  const a = mountsBuckets(before);
  const b = [...mountsBuckets(after)].sort(([x], [y]) => x - y);
  const total = (b.at(-1)?.[1] ?? 0) - (a.get(Infinity) ?? 0);
  if (total <= 0) return 'n/a';
  for (const [le, n] of b) {
    if (n - (a.get(le) ?? 0) >= 0.99 * total) return le === Infinity ? '> last bucket' : `<= ${ms(le * 1000)}`;
  }
  return 'n/a';
}

/** The Snapshots server alone: src/server around a core that returns the upstream's mounts, vs the upstream. */
async function benchServerLayer(client: ClientKind, tmp: string, layerCounts: number[], warmN: number, rows: string[][]): Promise<void> {
  const up = await startUpstream();
  const direct = new SnapshotsTestClient(up.address);
  const socket = path.join(tmp, 'server-only.sock');
  let answer: Mount[] = [];
  const core = { mounts: async () => answer } as unknown as ProfiledSnapshotter;
  const server = await startSnapshotsServer({ address: socket, snapshotter: core, logger: pino({ level: 'warn' }), metrics: new DaemonMetrics() });
  try {
    for (const n of layerCounts) {
      const ns = `server${n}`;
      const image = await unpackFixture(direct, { snapshotter: 'upstream', namespace: ns, caseDir: makeImage(tmp, n, 'server'), fsmeta: false });
      const key = `${ns}/${image.seq}/ctr`;
      answer = await direct.prepare({ snapshotter: 'upstream', key, parent: image.top }, { namespace: ns });
      const ours = await mountsCaller(client, socket, 'erofs-vmdk', key, ns);
      const theirs = await mountsCaller(client, up.address, 'upstream', key, ns);
      try {
        const [a, b] = await measurePair(warmN, ours.call, theirs.call);
        rows.push(['server', String(n), 'warm', String(warmN), ms(a.p50), ms(a.p99), ms(b.p50), ms(b.p99), (a.p50 / b.p50).toFixed(2), (a.p99 / b.p99).toFixed(2)]);
      } finally {
        ours.close();
        theirs.close();
      }
      process.stderr.write(`done: server layer ${n} layers\n`);
    }
  } finally {
    direct.close();
    await server.shutdown(1000);
    await up.close();
  }
}

function emptyDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { force: true });
}

const ms = (x: number) => `${x.toFixed(3)} ms`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '500' },
      'cold-iterations': { type: 'string', default: '30' },
      layers: { type: 'string', default: '1,16,128' },
      backend: { type: 'string', default: 'remote,embedded,server' },
      upstream: { type: 'string', default: 'process' },
      client: { type: 'string', default: 'http2' },
    },
  });
  const warmN = Number(values.iterations);
  const coldN = Number(values['cold-iterations']);
  const layerCounts = values.layers!.split(',').map(Number);
  const upstreamMode = values.upstream as UpstreamMode;
  if (upstreamMode !== 'process' && upstreamMode !== 'in-process') throw new Error(`--upstream: expected process or in-process, got ${values.upstream}`);
  const client = values.client as ClientKind;
  if (client !== 'http2' && client !== 'grpc-js') throw new Error(`--client: expected http2 or grpc-js, got ${values.client}`);

  const tmp = makeTempDir('erofs-vmdk-bench-');
  const rows: string[][] = [];
  const handlerTimes: string[] = [];
  for (const backend of values.backend!.split(',')) {
    if (backend === 'server') await benchServerLayer(client, tmp, layerCounts, warmN, rows);
    else if (backend === 'remote' || backend === 'embedded') await benchBackend({ backend, upstreamMode, client, tmp, layerCounts, warmN, coldN, rows, handlerTimes });
    else throw new Error(`--backend: unknown backend ${backend}`);
  }
  const floor = await measureFloor(client, tmp, warmN);
  fs.rmSync(tmp, { recursive: true, force: true });
  const header = ['backend', 'layers', 'phase', 'calls', 'daemon p50', 'daemon p99', 'direct p50', 'direct p99', 'ratio p50', 'ratio p99'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(
    `Mounts latency, erofs-vmdk serve vs the test upstream directly (remote/embedded rows: upstream ${upstreamMode}; ${client} client, its young generation emptied before each call); node ${process.version}`,
  );
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  console.log(`floor: bare grpc-js echo server in its own process, same ${client} client and pattern: p50 ${ms(floor.p50)}, p99 ${ms(floor.p99)} (${warmN} calls)`);
  for (const h of handlerTimes) console.log(h);
  console.log('targets: warm ratio p50 <= 1.3 and daemon p99 < 2 ms at 128 layers');
}

interface BackendBench {
  backend: 'remote' | 'embedded';
  upstreamMode: UpstreamMode;
  client: ClientKind;
  tmp: string;
  layerCounts: number[];
  warmN: number;
  coldN: number;
  rows: string[][];
  handlerTimes: string[];
}

async function benchBackend({ backend, upstreamMode, client, tmp, layerCounts, warmN, coldN, rows, handlerTimes }: BackendBench): Promise<void> {
  const up = await startBenchUpstream(upstreamMode);
  let d;
  try {
    d =
      backend === 'remote'
        ? // startDaemon only reads the upstream's address (the remote backend's config).
          await startDaemon({ upstream: { address: up.address } as TestUpstream, logLevel: 'info', metrics: true })
        : await startDaemon({ backend: 'embedded', logLevel: 'info', metrics: true, config: { embedded: { mount_style: 'manager' } } });
  } catch (err) {
    await up.close();
    throw err;
  }
  const direct = new SnapshotsTestClient(up.address);
  try {
    for (const n of layerCounts) {
      const ns = `bench${n}`;
      const caseDir = makeImage(tmp, n, backend);
      const differ = backend === 'remote' ? 'label' : 'copy';
      const image = await unpackFixture(d.client, { snapshotter: 'erofs-vmdk', namespace: ns, caseDir, fsmeta: false, differ });
      const key = `${ns}/${image.seq}/ctr`;
      const mounts = await d.client.prepare({ snapshotter: 'erofs-vmdk', key, parent: image.top }, { namespace: ns });
      if (mounts[0]?.type !== 'vmdk') throw new Error(`${n} layers: expected a vmdk mount, got ${JSON.stringify(mounts.map((m) => m.type))}`);
      // The reference: the same image in the test upstream, answered directly.
      const reference = backend === 'remote' ? image : await unpackFixture(direct, { snapshotter: 'upstream', namespace: ns, caseDir, fsmeta: false });
      if (backend === 'embedded') await direct.prepare({ snapshotter: 'upstream', key, parent: reference.top }, { namespace: ns });
      const upstreamKey = backend === 'remote' ? await up.lastPrepareKey() : key;
      const viaDaemon = await mountsCaller(client, d.socket, 'erofs-vmdk', key, ns);
      const viaUpstream = await mountsCaller(client, up.address, 'upstream', upstreamKey, ns);

      for (const phase of ['warm', 'cold'] as const) {
        const count = phase === 'warm' ? warmN : coldN;
        const emptyStore =
          phase === 'cold'
            ? () => {
                emptyDir(path.join(d.root, 'vmdk'));
                emptyDir(path.join(d.root, 'fsmeta'));
              }
            : undefined;
        let metricsBefore = '';
        const [a, b] = await measurePair(count, viaDaemon.call, viaUpstream.call, emptyStore, async () => {
          metricsBefore = await d.scrapeMetrics();
        });
        if (phase === 'warm') handlerTimes.push(`handler: ${backend} ${n} layers warm: 99% of the daemon's own Mounts times ${handlerP99(metricsBefore, await d.scrapeMetrics())}`);
        rows.push([backend, String(n), phase, String(count), ms(a.p50), ms(a.p99), ms(b.p50), ms(b.p99), (a.p50 / b.p50).toFixed(2), (a.p99 / b.p99).toFixed(2)]);
        process.stderr.write(`done: ${backend} ${n} layers ${phase}\n`);
      }
    }
  } finally {
    direct.close();
    await d.close();
    await up.close();
  }
}

(process.env[ECHO_CHILD_ENV] === '1' ? serveEchoChild(process.argv[2]) : process.env[CHILD_ENV] === '1' ? serveUpstreamChild() : main()).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
