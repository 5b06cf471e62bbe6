/**
 * A TEST snapshotter server speaking containerd.services.snapshots.v1.Snapshots
 * over a unix socket, in-process (grpc-js). It plays "another snapshotter" for
 * the daemon's remote backend and returns the mounts containerd's EROFS
 * snapshotter returns in containerd >= 2.2 ("mount manager" style, see
 * containerd plugins/snapshots/erofs/erofs.go and design §3), pointing at real
 * files (usually the fixture blobs in test/fixtures/erofs).
 *
 * Usage:
 *   const up = await startUpstream();                 // temp dir, socket inside it
 *   const up = await startUpstream({ blockSize: 64 << 20 });   // block mode (mkfs/ext4 writable layer)
 *   up.address / up.root / up.calls
 *   up.setMounts(key | /regexp/, mounts | (computed) => mounts)  // override what a key returns
 *   up.failNext('Mounts', status.PERMISSION_DENIED, 'nope')
 *   up.delayNext('Mounts', 1000)                      // answer the next Mounts after 1 s
 *   await up.stop(); await up.start();                // same socket, same state
 *   await up.close();                                 // stop + delete the temp dir
 *
 * Where a committed snapshot's blobs live (what its erofs lower mounts point at):
 *   - label LAYER_LABEL=<abs path> given at Commit (e.g. a fixture's layerN.erofs), else
 *     <root>/snapshots/<id>/layer.erofs (written there by whoever plays the differ);
 *   - label FSMETA_LABEL=<abs path> given at Commit marks a merged fsmeta covering this
 *     snapshot and all its parents (e.g. a fixture's fsmeta.erofs), else
 *     <root>/snapshots/<id>/fsmeta.erofs when it exists and is non-empty.
 * The labels use the `containerd.io/snapshot/` prefix because that is what
 * containerd lets through to proxy snapshotters.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, status } from '@grpc/grpc-js';
import {
  type Info,
  Kind,
  type ListSnapshotsRequest,
  type ListSnapshotsResponse,
  SnapshotsService,
  type SnapshotsServer,
} from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../../api/gen/containerd/types/mount';

export const LAYER_LABEL = 'containerd.io/snapshot/erofs-vmdk.test.layer';
export const FSMETA_LABEL = 'containerd.io/snapshot/erofs-vmdk.test.fsmeta';

export type Rpc = 'Prepare' | 'View' | 'Mounts' | 'Commit' | 'Remove' | 'Stat' | 'Update' | 'List' | 'Usage' | 'Cleanup';

export interface RecordedCall {
  rpc: Rpc;
  /** The request's `snapshotter` field (what the remote backend put there). */
  snapshotter: string;
  key: string;
  /** `containerd-namespace` metadata, undefined when absent. */
  namespace: string | undefined;
}

interface Snap {
  id: string;
  key: string;
  kind: 'active' | 'view' | 'committed';
  /** Key (name) of the parent committed snapshot, '' for none. */
  parent: string;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

export interface UpstreamOptions {
  /** Socket path; default <temp dir>/upstream.sock. */
  socket?: string;
  /** State dir; default a new temp dir (removed by close()). */
  root?: string;
  /** > 0: block mode like containerd's `default_size` (mkfs/ext4 writable layer). */
  blockSize?: number;
}

type MountOverride = Mount[] | ((computed: Mount[]) => Mount[]);

class Failure extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export class TestUpstream {
  readonly root: string;
  readonly address: string;
  readonly calls: RecordedCall[] = [];
  private readonly ownsRoot: boolean;
  private readonly blockSize: number;
  private readonly snaps = new Map<string, Snap>();
  private readonly overrides: { match: (key: string) => boolean; mounts: MountOverride }[] = [];
  private readonly failures = new Map<Rpc, { code: status; message: string }[]>();
  private readonly delays = new Map<Rpc, number[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nextId = 1;
  private server: Server | undefined;

  constructor(options: UpstreamOptions = {}) {
    this.ownsRoot = options.root === undefined;
    this.root = options.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'erofs-vmdk-upstream-'));
    this.address = options.socket ?? path.join(this.root, 'upstream.sock');
    this.blockSize = options.blockSize ?? 0;
    fs.mkdirSync(path.join(this.root, 'snapshots'), { recursive: true, mode: 0o700 });
  }

  /**
   * Replace what a key returns from Prepare/View/Mounts (a fixed list, or a
   * function of the computed one). `key` is the upstream key exactly, or a
   * RegExp (handy when a proxy prefixes keys, e.g. /\/bad-paths$/). Later calls win.
   */
  setMounts(key: string | RegExp, mounts: MountOverride): void {
    const match = typeof key === 'string' ? (k: string) => k === key : (k: string) => key.test(k);
    this.overrides.unshift({ match, mounts });
  }

  /** The next call of `rpc` fails with this gRPC status (queued; one per call). */
  failNext(rpc: Rpc, code: status, message: string): void {
    const queue = this.failures.get(rpc) ?? [];
    queue.push({ code, message });
    this.failures.set(rpc, queue);
  }

  /** The next call of `rpc` is answered only after `ms` milliseconds (queued; one per call). */
  delayNext(rpc: Rpc, ms: number): void {
    const queue = this.delays.get(rpc) ?? [];
    queue.push(ms);
    this.delays.set(rpc, queue);
  }

  /** Snapshot directory of a key (for tests that play the EROFS differ and write layer.erofs there). */
  snapshotDir(key: string): string {
    return path.join(this.root, 'snapshots', this.get(key).id);
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    if (this.server) return;
    try {
      if (fs.lstatSync(this.address).isSocket()) fs.unlinkSync(this.address);
    } catch {
      /* absent */
    }
    const server = new Server({ 'grpc.max_receive_message_length': 16 << 20 });
    server.addService(SnapshotsService, this.implementation());
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${this.address}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
  }

  /** Stops serving immediately (connections dropped); state is kept for start(). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (!server) return;
    server.forceShutdown();
    try {
      fs.unlinkSync(this.address);
    } catch {
      /* already gone */
    }
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.ownsRoot) fs.rmSync(this.root, { recursive: true, force: true });
  }

  // ---- snapshot model (containerd's storage semantics, simplified) ----

  private get(key: string): Snap {
    const s = this.snaps.get(key);
    if (!s) throw new Failure(status.NOT_FOUND, `snapshot ${key} does not exist: not found`);
    return s;
  }

  /** Parents, top first (containerd's ParentIDs order). */
  private chain(snap: Snap): Snap[] {
    const out: Snap[] = [];
    for (let p = snap.parent; p !== ''; p = this.get(p).parent) out.push(this.get(p));
    return out;
  }

  private dir(snap: Snap, ...parts: string[]): string {
    return path.join(this.root, 'snapshots', snap.id, ...parts);
  }

  private layerBlob(snap: Snap): string {
    return snap.labels[LAYER_LABEL] ?? this.dir(snap, 'layer.erofs');
  }

  private fsmetaOf(snap: Snap): string | undefined {
    if (snap.labels[FSMETA_LABEL]) return snap.labels[FSMETA_LABEL];
    const p = this.dir(snap, 'fsmeta.erofs');
    // No exception per parent without fsmeta: a 128-layer Mounts would spend
    // milliseconds building errors, far slower than containerd's os.Stat loop.
    const st = fs.statSync(p, { throwIfNoEntry: false });
    return st !== undefined && st.size > 0 ? p : undefined;
  }

  /** The mounts containerd >= 2.2's EROFS snapshotter returns (design §3). */
  computeMounts(snap: Snap): Mount[] {
    const m = (type: string, source: string, options: string[]): Mount => ({ type, source, target: '', options });
    const parents = this.chain(snap);
    const ro = snap.kind === 'view' ? 'ro' : 'rw';
    if (parents.length === 0) {
      if (this.blockSize > 0 && snap.kind === 'active') {
        return [
          m('mkfs/ext4', this.dir(snap, 'rwlayer.img'), ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${this.blockSize}`, ro, 'loop']),
          m('format/mkdir/bind', '{{ mount 0 }}/upper', ['X-containerd.mkdir.path={{ mount 0 }}/upper:0755', ro, 'rbind']),
        ];
      }
      return [m('bind', this.dir(snap, 'fs'), [ro, 'rbind'])];
    }
    const mounts: Mount[] = [];
    const options: string[] = [];
    if (snap.kind === 'active') {
      if (this.blockSize > 0) {
        mounts.push(m('mkfs/ext4', this.dir(snap, 'rwlayer.img'), ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${this.blockSize}`, 'rw', 'loop']));
        options.push(
          'X-containerd.mkdir.path={{ mount 0 }}/upper:0755',
          'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
          'workdir={{ mount 0 }}/work',
          'upperdir={{ mount 0 }}/upper',
        );
      } else {
        options.push(`workdir=${this.dir(snap, 'work')}`, `upperdir=${this.dir(snap, 'fs')}`);
      }
    } else if (parents.length === 1) {
      return [m('erofs', this.layerBlob(parents[0]), ['ro', 'loop'])];
    }
    const first = mounts.length;
    for (let i = 0; i < parents.length; i++) {
      const fsmeta = this.fsmetaOf(parents[i]);
      if (fsmeta) {
        // Devices bottom first, down to and including the parent that owns the fsmeta.
        const devices = parents
          .slice(i)
          .reverse()
          .map((p) => `device=${this.layerBlob(p)}`);
        mounts.push(m('erofs', fsmeta, ['ro', 'loop', ...devices]));
        break;
      }
      mounts.push(m('erofs', this.layerBlob(parents[i]), ['ro', 'loop']));
    }
    const last = mounts.length - 1;
    if (snap.kind === 'view' && last === first) {
      return [...mounts, m('format/bind', `{{ mount ${first} }}`, ['ro', 'rbind'])];
    }
    options.push(last === first ? `lowerdir={{ mount ${first} }}` : `lowerdir={{ overlay ${first} ${last} }}`);
    return [...mounts, m('format/mkdir/overlay', 'overlay', options)];
  }

  private mountsFor(snap: Snap): Mount[] {
    const computed = this.computeMounts(snap);
    const o = this.overrides.find((x) => x.match(snap.key))?.mounts;
    if (o === undefined) return computed;
    return typeof o === 'function' ? o(computed) : o;
  }

  private create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>): Mount[] {
    if (key === '') throw new Failure(status.INVALID_ARGUMENT, 'key must not be empty');
    if (this.snaps.has(key)) throw new Failure(status.ALREADY_EXISTS, `snapshot ${key}: already exists`);
    if (parent !== '') {
      const p = this.get(parent);
      if (p.kind !== 'committed') throw new Failure(status.INVALID_ARGUMENT, `parent ${parent} is not a committed snapshot`);
    }
    const now = new Date();
    const snap: Snap = { id: String(this.nextId++), key, kind, parent, labels: { ...labels }, createdAt: now, updatedAt: now };
    fs.mkdirSync(this.dir(snap, 'fs'), { recursive: true });
    if (kind === 'active') {
      if (this.blockSize === 0) fs.mkdirSync(this.dir(snap, 'work'));
      fs.writeFileSync(this.dir(snap, '.erofslayer'), '');
    }
    this.snaps.set(key, snap);
    return this.mountsFor(snap);
  }

  private commit(name: string, key: string, labels: Record<string, string>, parent: string): void {
    const snap = this.get(key);
    if (snap.kind !== 'active') throw new Failure(status.FAILED_PRECONDITION, `snapshot ${key} is not active`);
    if (this.snaps.has(name)) throw new Failure(status.ALREADY_EXISTS, `snapshot ${name}: already exists`);
    if (parent !== '') this.get(parent);
    this.snaps.delete(key);
    const now = new Date();
    this.snaps.set(name, { ...snap, key: name, kind: 'committed', parent: parent || snap.parent, labels: { ...snap.labels, ...labels }, updatedAt: now });
  }

  private remove(key: string): void {
    this.get(key);
    for (const s of this.snaps.values()) {
      if (s.parent === key) throw new Failure(status.FAILED_PRECONDITION, `cannot remove snapshot ${key}: it has children`);
    }
    const snap = this.get(key);
    this.snaps.delete(key);
    fs.rmSync(this.dir(snap), { recursive: true, force: true });
  }

  private info(snap: Snap): Info {
    const kind = { active: Kind.ACTIVE, view: Kind.VIEW, committed: Kind.COMMITTED }[snap.kind];
    return { name: snap.key, parent: snap.parent, kind, labels: { ...snap.labels }, createdAt: snap.createdAt, updatedAt: snap.updatedAt };
  }

  private update(info: Info | undefined, paths: string[]): Info {
    if (!info) throw new Failure(status.INVALID_ARGUMENT, 'info is required');
    const snap = this.get(info.name);
    if (paths.length === 0) {
      snap.labels = { ...info.labels };
    } else {
      for (const p of paths) {
        if (p === 'labels') snap.labels = { ...info.labels };
        else if (p.startsWith('labels.')) {
          const k = p.slice('labels.'.length);
          if (k in info.labels) snap.labels[k] = info.labels[k];
          else delete snap.labels[k];
        } else throw new Failure(status.INVALID_ARGUMENT, `cannot update ${p} field on snapshot ${info.name}`);
      }
    }
    snap.updatedAt = new Date();
    return this.info(snap);
  }

  /** containerd filter subset: `a==b` clauses AND-ed by ',', strings OR-ed; fields name, parent, kind, labels."k" / labels.k. */
  private matches(snap: Snap, filters: string[]): boolean {
    if (filters.length === 0) return true;
    const field = (f: string): string | undefined => {
      if (f === 'name') return snap.key;
      if (f === 'parent') return snap.parent;
      if (f === 'kind') return snap.kind;
      const lm = /^labels\.(?:"(.*)"|(.*))$/.exec(f);
      if (lm) return snap.labels[lm[1] ?? lm[2]];
      throw new Failure(status.INVALID_ARGUMENT, `unsupported filter field ${f}`);
    };
    return filters.some((filter) =>
      filter.split(',').every((clause) => {
        const eq = clause.indexOf('==');
        if (eq < 0) return field(clause.trim()) !== undefined;
        return field(clause.slice(0, eq).trim()) === clause.slice(eq + 2).trim().replace(/^"(.*)"$/, '$1');
      }),
    );
  }

  // ---- gRPC plumbing ----

  private record(rpc: Rpc, call: { request: { snapshotter: string }; metadata: { get(k: string): unknown[] } }, key: string): void {
    const ns = call.metadata.get('containerd-namespace')[0];
    this.calls.push({ rpc, snapshotter: call.request.snapshotter, key, namespace: ns === undefined ? undefined : String(ns) });
    const queued = this.failures.get(rpc)?.shift();
    if (queued) throw new Failure(queued.code, queued.message);
  }

  private implementation(): SnapshotsServer {
    const unary =
      <Req extends { snapshotter: string }, Res>(rpc: Rpc, keyOf: (r: Req) => string, body: (r: Req) => Res) =>
      (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
        const answer = () => {
          try {
            this.record(rpc, call, keyOf(call.request));
            callback(null, body(call.request));
          } catch (err) {
            const f = err instanceof Failure ? err : new Failure(status.INTERNAL, String(err));
            callback({ code: f.code, details: f.message });
          }
        };
        const delay = this.delays.get(rpc)?.shift();
        if (delay === undefined) return answer();
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          answer();
        }, delay);
        this.timers.add(timer);
      };
    return {
      prepare: unary('Prepare', (r) => r.key, (r) => ({ mounts: this.create('active', r.key, r.parent, r.labels) })),
      view: unary('View', (r) => r.key, (r) => ({ mounts: this.create('view', r.key, r.parent, r.labels) })),
      mounts: unary('Mounts', (r) => r.key, (r) => ({ mounts: this.mountsFor(this.get(r.key)) })),
      commit: unary('Commit', (r) => r.key, (r) => (this.commit(r.name, r.key, r.labels, r.parent), {})),
      remove: unary('Remove', (r) => r.key, (r) => (this.remove(r.key), {})),
      stat: unary('Stat', (r) => r.key, (r) => ({ info: this.info(this.get(r.key)) })),
      update: unary('Update', (r) => r.info?.name ?? '', (r) => ({ info: this.update(r.info, r.updateMask ?? []) })),
      usage: unary('Usage', (r) => r.key, (r) => {
        const snap = this.get(r.key);
        let size = 0;
        try {
          size = snap.kind === 'committed' ? fs.statSync(this.layerBlob(snap)).size : 0;
        } catch {
          /* no blob */
        }
        return { size, inodes: 0 };
      }),
      cleanup: unary('Cleanup', () => '', () => ({})),
      list: (call: ServerWritableStream<ListSnapshotsRequest, ListSnapshotsResponse>) => {
        try {
          this.record('List', call, '');
          const infos = [...this.snaps.values()].filter((s) => this.matches(s, call.request.filters)).map((s) => this.info(s));
          for (let i = 0; i < infos.length; i += 2) call.write({ info: infos.slice(i, i + 2) });
          call.end();
        } catch (err) {
          const f = err instanceof Failure ? err : new Failure(status.INTERNAL, String(err));
          // grpc-js turns an 'error' event into the call's status (destroy() would send none).
          call.emit('error', Object.assign(new Error(f.message), { code: f.code, details: f.message }));
        }
      },
    };
  }
}

export async function startUpstream(options: UpstreamOptions = {}): Promise<TestUpstream> {
  const up = new TestUpstream(options);
  await up.start();
  return up;
}
