/**
 * A small in-memory Backend for the proxy-core tests. It returns the mount
 * shapes of containerd's EROFS snapshotter (>= 2.2 "manager" style, or the
 * legacy overlay of `<dir>/fs` lowerdirs), pointing at fixture files: a
 * committed snapshot's layer blob is given with the label LAYER_LABEL at
 * Commit, an fsmeta covering it and everything below with FSMETA_LABEL.
 * Filters are applied with containerd's semantics, so the proxy's filter
 * translation is really exercised.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, CallContext, SnapshotInfo, SnapshotUsage } from '../../src/backend/backend';
import { matchesAny, parseFilters } from '../../src/backend/embedded/filters';
import { alreadyExists, invalidArgument, notFound } from '../../src/errdefs';
import type { Mount } from '../../src/mount';

export const LAYER_LABEL = 'containerd.io/snapshot/test.layer';
export const FSMETA_LABEL = 'containerd.io/snapshot/test.fsmeta';

interface Snap {
  id: number;
  info: SnapshotInfo;
}

export interface Call {
  op: string;
  key?: string;
  parent?: string;
  filters?: string[];
  namespace?: string;
}

export class FakeBackend implements Backend {
  readonly calls: Call[] = [];
  readonly snaps = new Map<string, Snap>();
  private seq = 0;
  closed = false;
  /** Per backend key: mounts to return instead of the computed ones. */
  readonly overrides = new Map<string, Mount[]>();

  /** `legacyRoot`: where legacy-style `snapshots/<id>/{fs,layer.erofs}` are laid out. */
  constructor(readonly style: 'manager' | 'legacy' = 'manager', public legacyRoot = '/fake/erofs') {}

  private record(op: string, ctx: CallContext, extra: Omit<Call, 'op' | 'namespace'> = {}): void {
    this.calls.push({ op, namespace: ctx.namespace, ...extra });
  }

  private get(key: string): Snap {
    const s = this.snaps.get(key);
    if (!s) throw notFound(`snapshot ${key} does not exist`);
    return s;
  }

  private create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>): Mount[] {
    if (this.snaps.has(key)) throw alreadyExists(`snapshot ${key} already exists`);
    if (parent !== '' && this.get(parent).info.kind !== 'committed') throw invalidArgument(`parent ${parent} is not committed`);
    const now = new Date();
    this.snaps.set(key, { id: ++this.seq, info: { name: key, parent, kind, labels: { ...labels }, createdAt: now, updatedAt: now } });
    return this.mountsOf(key);
  }

  /** Committed parents, top first. */
  private chain(key: string): Snap[] {
    const out: Snap[] = [];
    for (let p = this.get(key).info.parent; p !== ''; p = this.get(p).info.parent) out.push(this.get(p));
    return out;
  }

  private layerOf(s: Snap): string {
    const layer = s.info.labels[LAYER_LABEL];
    if (!layer) throw new Error(`fake backend: ${s.info.name} has no ${LAYER_LABEL} label`);
    if (this.style === 'legacy') {
      const dir = path.join(this.legacyRoot, 'snapshots', String(s.id));
      if (!fs.existsSync(path.join(dir, 'layer.erofs'))) {
        fs.mkdirSync(path.join(dir, 'fs'), { recursive: true });
        fs.symlinkSync(layer, path.join(dir, 'layer.erofs'));
      }
      return path.join(dir, 'fs');
    }
    return layer;
  }

  mountsOf(key: string): Mount[] {
    const override = this.overrides.get(key);
    if (override) return structuredClone(override);
    const snap = this.get(key);
    const parents = this.chain(key);
    const dir = `${this.legacyRoot}/snapshots/${snap.id}`;
    const erofs = (source: string, extra: string[] = []): Mount => ({ type: 'erofs', source, target: '', options: ['ro', 'loop', ...extra] });
    if (parents.length === 0) return [{ type: 'bind', source: `${dir}/fs`, target: '', options: [snap.info.kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
    const upper = snap.info.kind === 'active' ? [`workdir=${dir}/work`, `upperdir=${dir}/fs`] : [];
    if (this.style === 'legacy') {
      if (snap.info.kind === 'view' && parents.length === 1) return [erofs(parents[0].info.labels[LAYER_LABEL])];
      return [{ type: 'overlay', source: 'overlay', target: '', options: [...upper, `lowerdir=${parents.map((p) => this.layerOf(p)).join(':')}`] }];
    }
    if (snap.info.kind === 'view' && parents.length === 1) return [erofs(this.layerOf(parents[0]))];
    const mounts: Mount[] = [];
    for (let i = 0; i < parents.length; i++) {
      const fsmeta = parents[i].info.labels[FSMETA_LABEL];
      if (fsmeta) {
        const devices = parents.slice(i).reverse().map((p) => `device=${this.layerOf(p)}`);
        mounts.push(erofs(fsmeta, devices));
        break;
      }
      mounts.push(erofs(this.layerOf(parents[i])));
    }
    const lower = mounts.length === 1 ? '{{ mount 0 }}' : `{{ overlay 0 ${mounts.length - 1} }}`;
    mounts.push({ type: 'format/mkdir/overlay', source: 'overlay', target: '', options: [...upper, `lowerdir=${lower}`] });
    return mounts;
  }

  async prepare(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    this.record('prepare', ctx, { key, parent });
    return this.create('active', key, parent, labels);
  }

  async view(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    this.record('view', ctx, { key, parent });
    return this.create('view', key, parent, labels);
  }

  async mounts(ctx: CallContext, key: string): Promise<Mount[]> {
    this.record('mounts', ctx, { key });
    return this.mountsOf(key);
  }

  async commit(ctx: CallContext, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void> {
    this.record('commit', ctx, { key, parent });
    const s = this.get(key);
    if (this.snaps.has(name)) throw alreadyExists(`snapshot ${name} already exists`);
    this.snaps.delete(key);
    s.info = { ...s.info, name, kind: 'committed', labels: { ...s.info.labels, ...labels }, parent: parent || s.info.parent };
    this.snaps.set(name, s);
  }

  async remove(ctx: CallContext, key: string): Promise<void> {
    this.record('remove', ctx, { key });
    this.get(key);
    if ([...this.snaps.values()].some((s) => s.info.parent === key)) throw invalidArgument(`snapshot ${key} has children`);
    this.snaps.delete(key);
  }

  async stat(ctx: CallContext, key: string): Promise<SnapshotInfo> {
    this.record('stat', ctx, { key });
    return structuredClone(this.get(key).info);
  }

  async update(ctx: CallContext, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo> {
    this.record('update', ctx, { key: info.name });
    const s = this.get(info.name);
    if (fieldPaths.length === 0 || fieldPaths.includes('labels')) s.info.labels = { ...info.labels };
    for (const p of fieldPaths.filter((f) => f.startsWith('labels.'))) {
      const k = p.slice('labels.'.length);
      if (k in info.labels) s.info.labels[k] = info.labels[k];
      else delete s.info.labels[k];
    }
    return structuredClone(s.info);
  }

  async *list(ctx: CallContext, filters: string[]): AsyncIterable<SnapshotInfo> {
    this.record('list', ctx, { filters: [...filters] });
    const parsed = parseFilters(filters);
    for (const s of [...this.snaps.values()]) if (matchesAny(parsed, s.info)) yield structuredClone(s.info);
  }

  async usage(ctx: CallContext, key: string): Promise<SnapshotUsage> {
    this.record('usage', ctx, { key });
    this.get(key);
    return { size: 4096, inodes: 1 };
  }

  async cleanup(ctx: CallContext): Promise<void> {
    this.record('cleanup', ctx);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
