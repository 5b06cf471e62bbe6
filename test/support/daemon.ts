/**
 * Runs the real daemon (`node bin/erofs-vmdk.js serve`) as a child process for
 * integration tests, and talks to it like containerd does.
 *
 *   const up = await startUpstream();                        // test/support/upstream.ts
 *   const d = await startDaemon({ upstream: up });           // backend = "remote" -> up
 *   const d = await startDaemon({ backend: 'embedded', config: { embedded: { mount_style: 'manager' } } });
 *   try {
 *     const mounts = await d.client.prepare({ snapshotter: 'erofs-vmdk', key: 'default/1/c1', parent }, { namespace: 'default' });
 *     ...
 *     await d.restart();                 // SIGTERM, wait for exit 0, start again on the same root/socket/config
 *     await d.kill();                    // SIGKILL (crash); then d.start() to bring it back
 *   } finally {
 *     await d.close();                   // stop, unmount anything left under its temp dir, delete it
 *     await up.close();
 *   }
 *
 * Everything lives in one temp dir: <dir>/config.toml, <dir>/root (state), <dir>/d.sock,
 * and with `metrics: true` a unix metrics socket <dir>/metrics.sock (fetch with d.scrapeMetrics()).
 * d.logs() returns the daemon's stderr/stdout so far (pino JSON lines); d.logRecords() parses them.
 *
 * The client (SnapshotsTestClient) is a typed promise wrapper of the grpc-js
 * client generated from api/: every call sends `containerd-namespace`
 * (option `namespace`, default "default"; pass `namespace: null` to send none,
 * like containerd's garbage collector). Failures reject with the grpc-js
 * ServiceError (`err.code` is the gRPC status, `err.details` the message).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { type CallOptions, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { stringify } from 'smol-toml';
import { type Info, SnapshotsClient } from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../../api/gen/containerd/types/mount';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../api/gen/grpc/health/v1/health';
import { cliPath } from './fixtures';
import { FSMETA_LABEL, LAYER_LABEL, type TestUpstream } from './upstream';

export interface CallOpts {
  /** `containerd-namespace` metadata; default "default"; null sends none (GC calls). */
  namespace?: string | null;
  /** Deadline in ms from now. */
  timeoutMs?: number;
}

type Unary = (req: unknown, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: unknown) => void) => unknown;

export class SnapshotsTestClient {
  readonly raw: InstanceType<typeof SnapshotsClient>;
  private readonly health: InstanceType<typeof HealthClient>;

  constructor(readonly socket: string) {
    const options = { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20, 'grpc.max_reconnect_backoff_ms': 500 };
    this.raw = new SnapshotsClient(`unix:${socket}`, credentials.createInsecure(), options);
    this.health = new HealthClient(`unix:${socket}`, credentials.createInsecure(), options);
  }

  static metadata(opts: CallOpts = {}): Metadata {
    const md = new Metadata();
    const ns = opts.namespace === undefined ? 'default' : opts.namespace;
    if (ns !== null) md.set('containerd-namespace', ns);
    return md;
  }

  private call<Res>(method: unknown, req: unknown, opts: CallOpts = {}): Promise<Res> {
    const callOptions: Partial<CallOptions> = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    return new Promise((resolve, reject) =>
      (method as Unary).call(this.raw, req, SnapshotsTestClient.metadata(opts), callOptions, (err, res) => (err ? reject(err) : resolve(res as Res))),
    );
  }

  async prepare(req: { snapshotter: string; key: string; parent?: string; labels?: Record<string, string> }, opts?: CallOpts): Promise<Mount[]> {
    const res = await this.call<{ mounts: Mount[] }>(this.raw.prepare, { parent: '', labels: {}, ...req }, opts);
    return res.mounts;
  }

  async view(req: { snapshotter: string; key: string; parent?: string; labels?: Record<string, string> }, opts?: CallOpts): Promise<Mount[]> {
    const res = await this.call<{ mounts: Mount[] }>(this.raw.view, { parent: '', labels: {}, ...req }, opts);
    return res.mounts;
  }

  async mounts(req: { snapshotter: string; key: string }, opts?: CallOpts): Promise<Mount[]> {
    return (await this.call<{ mounts: Mount[] }>(this.raw.mounts, req, opts)).mounts;
  }

  async commit(req: { snapshotter: string; name: string; key: string; labels?: Record<string, string>; parent?: string }, opts?: CallOpts): Promise<void> {
    await this.call(this.raw.commit, { labels: {}, parent: '', ...req }, opts);
  }

  async remove(req: { snapshotter: string; key: string }, opts?: CallOpts): Promise<void> {
    await this.call(this.raw.remove, req, opts);
  }

  async stat(req: { snapshotter: string; key: string }, opts?: CallOpts): Promise<Info> {
    return (await this.call<{ info: Info }>(this.raw.stat, req, opts)).info;
  }

  async update(req: { snapshotter: string; info: Partial<Info> & { name: string }; paths?: string[] }, opts?: CallOpts): Promise<Info> {
    const info = { parent: '', kind: 0, labels: {}, createdAt: undefined, updatedAt: undefined, ...req.info };
    return (await this.call<{ info: Info }>(this.raw.update, { snapshotter: req.snapshotter, info, updateMask: req.paths }, opts)).info;
  }

  list(req: { snapshotter: string; filters?: string[] }, opts: CallOpts = {}): Promise<Info[]> {
    return new Promise((resolve, reject) => {
      const out: Info[] = [];
      const stream = this.raw.list({ snapshotter: req.snapshotter, filters: req.filters ?? [] }, SnapshotsTestClient.metadata(opts));
      stream.on('data', (res: { info: Info[] }) => out.push(...res.info));
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
  }

  async usage(req: { snapshotter: string; key: string }, opts?: CallOpts): Promise<{ size: number; inodes: number }> {
    return this.call(this.raw.usage, req, opts);
  }

  async cleanup(req: { snapshotter: string }, opts?: CallOpts): Promise<void> {
    await this.call(this.raw.cleanup, req, opts);
  }

  /** grpc.health.v1 Check: 'SERVING' | 'NOT_SERVING' | ... */
  checkHealth(service = '', timeoutMs = 2000): Promise<string> {
    return new Promise((resolve, reject) =>
      this.health.check({ service }, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(HealthCheckResponse_ServingStatus[res.status] ?? String(res.status)),
      ),
    );
  }

  close(): void {
    this.raw.close();
    this.health.close();
  }
}

export interface DaemonOptions {
  /** Remote backend pointing at this test upstream (sets backend = "remote"). */
  upstream?: TestUpstream;
  /** Upstream snapshotter name put in requests (remote backend). Default "upstream". */
  upstreamSnapshotter?: string;
  backend?: 'remote' | 'embedded';
  /** Extra config keys, deep-merged over the generated ones (TOML structure). */
  config?: Record<string, unknown>;
  logLevel?: string;
  /** Serve Prometheus metrics on <dir>/metrics.sock. */
  metrics?: boolean;
  /** Extra CLI flags after `serve --config <file>`. */
  extraArgs?: string[];
  /** How long to wait for health SERVING (default 20 s). */
  startTimeoutMs?: number;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Unmounts everything mounted at or below `dir` (deepest first), so a temp dir can be deleted. */
export function unmountUnder(dir: string): void {
  const prefix = fs.realpathSync(dir);
  const targets = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((t): t is string => t !== undefined && (t === prefix || t.startsWith(`${prefix}/`)))
    .map((t) => t.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .sort((a, b) => b.length - a.length);
  for (const t of targets) {
    try {
      execFileSync('umount', ['-l', t], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

export class TestDaemon {
  readonly dir: string;
  readonly root: string;
  readonly socket: string;
  readonly configPath: string;
  readonly metricsAddress: string | undefined;
  readonly client: SnapshotsTestClient;
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  private output = '';

  constructor(private readonly options: DaemonOptions = {}) {
    // Short path: unix socket addresses are limited to 107 bytes.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evd-'));
    this.root = path.join(this.dir, 'root');
    this.socket = path.join(this.dir, 'd.sock');
    this.configPath = path.join(this.dir, 'config.toml');
    this.metricsAddress = options.metrics ? path.join(this.dir, 'metrics.sock') : undefined;
    const backend = options.backend ?? (options.upstream ? 'remote' : 'embedded');
    let config: Record<string, unknown> = {
      address: this.socket,
      root: this.root,
      log_level: options.logLevel ?? 'debug',
      backend,
      shutdown_timeout_ms: 5000,
    };
    if (this.metricsAddress) config.metrics_address = this.metricsAddress;
    if (options.upstream) {
      config.remote = { address: options.upstream.address, snapshotter: options.upstreamSnapshotter ?? 'upstream' };
    }
    config = deepMerge(config, options.config ?? {});
    fs.writeFileSync(this.configPath, stringify(config));
    this.client = new SnapshotsTestClient(this.socket);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  logs(): string {
    return this.output;
  }

  /** The daemon's pino log lines, parsed (non-JSON lines are skipped). */
  logRecords(): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  /** Starts the process and waits until grpc.health.v1 says SERVING. */
  async start(): Promise<void> {
    if (this.child) throw new Error('daemon already running');
    // EROFS_VMDK_DAEMON_NODE_ARGS: extra node flags for the daemon child (e.g. --cpu-prof for hack/bench-mounts).
    const child = spawn(process.execPath, [...(process.env.EROFS_VMDK_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean), cliPath, 'serve', '--config', this.configPath, ...(this.options.extraArgs ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    let exitedEarly = false;
    void this.exited.then(() => (exitedEarly = true));
    for (;;) {
      if (exitedEarly) throw new Error(`daemon exited during start-up:\n${this.output}`);
      try {
        if ((await this.client.checkHealth('', 1000)) === 'SERVING') return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`daemon not healthy within the start timeout:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child || !this.exited) return { code: null, signal: null };
    child.kill(signal);
    return this.exited;
  }

  /** SIGKILL: a crash, no clean-up by the daemon. */
  async kill(): Promise<void> {
    await this.stop('SIGKILL');
  }

  /** Graceful stop (must exit 0) and start again with the same config, root and socket. */
  async restart(): Promise<void> {
    const { code } = await this.stop('SIGTERM');
    if (code !== 0 && code !== null) throw new Error(`daemon exited with ${code} on SIGTERM:\n${this.output}`);
    await this.start();
  }

  /** GET /metrics from the unix metrics socket (options.metrics). */
  scrapeMetrics(): Promise<string> {
    const socketPath = this.metricsAddress;
    if (!socketPath) throw new Error('daemon started without metrics: true');
    return new Promise((resolve, reject) => {
      http
        .get({ socketPath, path: '/metrics' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
  }

  /** Stops the daemon (SIGKILL if SIGTERM takes over 10 s), unmounts leftovers, deletes the temp dir. */
  async close(): Promise<void> {
    this.client.close();
    if (this.child) {
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
      await this.stop('SIGTERM');
      clearTimeout(timer);
    }
    unmountUnder(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const d = new TestDaemon(options);
  try {
    await d.start();
  } catch (err) {
    await d.close();
    throw err;
  }
  return d;
}

// ---- driving the daemon like containerd's unpacker ----

export interface UnpackOptions {
  snapshotter: string;
  namespace?: string;
  /** Fixture case directory (with layers.txt, layerN.erofs, optional fsmeta.erofs). */
  caseDir: string;
  /**
   * How layer blobs reach the snapshotter:
   *  'label' (default): Commit carries LAYER_LABEL/FSMETA_LABEL pointing at the fixture files
   *                      (test upstream only: its mounts then point at the fixture files);
   *  'copy': play containerd's EROFS differ: find the layer dir from the Prepare mounts,
   *          require its `.erofslayer` marker and copy the blob to <dir>/layer.erofs
   *          (fsmeta to the top layer's <dir>/fsmeta.erofs). Works with any backend.
   */
  differ?: 'label' | 'copy';
  /** Use the case's fsmeta.erofs (default: when the case has one). */
  fsmeta?: boolean;
  /** First sequence number for backend keys `<ns>/<seq>/...` (default 1). */
  seq?: number;
}

export interface UnpackedImage {
  /** Committed names, bottom first (`<ns>/<seq>/sha256:<chain>`). */
  names: string[];
  /** The top layer's committed name: the parent for container snapshots. */
  top: string;
  /** Next free sequence number. */
  seq: number;
}

/** The directory containerd's EROFS differ writes layer.erofs into (design §3). */
export function erofsLayerDir(mounts: Mount[]): string {
  if (mounts.length === 0) throw new Error('no mounts');
  const first = mounts[0];
  if (first.type.startsWith('mkfs/')) return path.dirname(first.source);
  const last = mounts[mounts.length - 1];
  if (last.type === 'bind' || last.type === 'erofs') return path.dirname(last.source);
  if (last.type.endsWith('overlay')) {
    const upper = last.options.find((o) => o.startsWith('upperdir='));
    if (!upper) throw new Error('overlay mount without upperdir');
    return path.dirname(upper.slice('upperdir='.length));
  }
  throw new Error(`cannot find the layer dir in mounts of type ${last.type}`);
}

export async function unpackFixture(client: SnapshotsTestClient, options: UnpackOptions): Promise<UnpackedImage> {
  const ns = options.namespace ?? 'default';
  const differ = options.differ ?? 'label';
  const layers = fs
    .readFileSync(path.join(options.caseDir, 'layers.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => path.resolve(options.caseDir, l));
  const fsmetaPath = path.join(options.caseDir, 'fsmeta.erofs');
  const useFsmeta = options.fsmeta ?? fs.existsSync(fsmetaPath);
  let seq = options.seq ?? 1;
  let parent = '';
  let chain = '';
  const names: string[] = [];
  for (const [i, layer] of layers.entries()) {
    chain = createHash('sha256').update(`${chain}|${path.basename(layer)}|${fs.statSync(layer).size}`).digest('hex');
    const key = `${ns}/${seq++}/extract-${process.pid}${i}-${Math.random().toString(36).slice(2, 6)} sha256:${chain}`;
    const name = `${ns}/${seq++}/sha256:${chain}`;
    const mounts = await client.prepare(
      { snapshotter: options.snapshotter, key, parent, labels: { 'containerd.io/snapshot.ref': `sha256:${chain}`, 'containerd.io/snapshot/cri.layer-digest': `sha256:${chain}` } },
      { namespace: ns },
    );
    const labels: Record<string, string> = {};
    const isTop = i === layers.length - 1;
    if (differ === 'label') {
      labels[LAYER_LABEL] = layer;
      if (isTop && useFsmeta) labels[FSMETA_LABEL] = fsmetaPath;
    } else {
      const dir = erofsLayerDir(mounts);
      if (!fs.existsSync(path.join(dir, '.erofslayer'))) throw new Error(`no .erofslayer marker in ${dir} (mounts ${JSON.stringify(mounts)})`);
      fs.copyFileSync(layer, path.join(dir, 'layer.erofs'));
      if (isTop && useFsmeta) fs.copyFileSync(fsmetaPath, path.join(dir, 'fsmeta.erofs'));
    }
    await client.commit({ snapshotter: options.snapshotter, name, key, labels }, { namespace: ns });
    names.push(name);
    parent = name;
  }
  return { names, top: parent, seq };
}
