/**
 * Turns a flat rewrite plan into a descriptor in the store: merge (when the
 * layers have no fsmeta), validate and repair (src/erofs prepareFlatDisk),
 * render (src/vmdk), write content-addressed.
 *
 * Warm path: the result for the same inputs is remembered in memory and reused
 * only while every input file still has the identity it had (dev, inode, size,
 * mtime) and every store file still exists. A descriptor deleted behind our
 * back is therefore rebuilt on the next request, and a replaced layer file is
 * never described with stale extents.
 */
import * as fs from 'node:fs';
import type pino from 'pino';
import { SnapshotterError } from '../errdefs';
import { ErofsFormatError } from '../erofs/errors';
import type { FlatDisk, FlatDiskInput } from '../erofs/flat-layout';
import type { FlatPlan } from '../rewrite';
import type { Store } from '../store';
import { VmdkError, type Extent } from '../vmdk';
import { MergedFsmetaBuilder, type MergeFn } from './merged-fsmeta';

export interface FlatDiskDeps {
  prepareFlatDisk(input: FlatDiskInput, options: { repairDir: string }): FlatDisk;
  renderDescriptor(extents: Extent[]): string;
  mergeLayers: MergeFn;
}

export interface BuiltDisk {
  descriptor: string;
  /** Store files the descriptor depends on (descriptor, private fsmeta copies). */
  files: string[];
  layers: number;
  repaired: boolean;
  merged: boolean;
  /** Served from memory without touching the layers' metadata. */
  cached: boolean;
  /** Releases the GC pin on `files`; call after recording the references. */
  release(): void;
}

interface CacheEntry {
  descriptor: string;
  files: string[];
  identities: string[];
  /** When the identities were last compared with the files (ms since epoch). */
  verifiedAt: number;
  repaired: boolean;
  merged: boolean;
}

/** Enough for every container of a busy node; beyond it the oldest entry is rebuilt on demand. */
const CACHE_LIMIT = 4096;

/**
 * How long a cached answer is served without re-reading the inputs' identity.
 * Neither containerd nor the embedded backend ever rewrites a layer file in
 * place (snapshot ids are never reused; containerd even marks blobs
 * immutable), so this guards against outside interference only. Ordinary
 * traffic (calls seconds apart) is verified on every call; only a burst of
 * calls for one image within this window skips the per-layer stat(2)s, which
 * dominate the warm path at 128 layers. The store files themselves are checked
 * on every call, so a deleted descriptor is always rebuilt.
 */
export const REVALIDATE_MS = 1000;

function statIdentity(file: string): string | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : undefined;
}

/** Path rule violations are the caller's (or upstream's) bad input; everything else is a refused image. */
function isPathProblem(code: string): boolean {
  return code.startsWith('path-') || code === 'relative-path';
}

export class FlatDiskBuilder {
  private readonly cache = new Map<string, CacheEntry>();
  /** A plan reused for a shared answer (see ProxySnapshotter) keeps its inputs and cache key: 128 paths are not copied and re-serialised per call. */
  private readonly planInputs = new WeakMap<FlatPlan, { inputs: string[]; cacheKey: string }>();
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly merged: MergedFsmetaBuilder;

  constructor(
    private readonly store: Store,
    private readonly deps: FlatDiskDeps,
    private readonly logger: pino.Logger,
    private readonly revalidateMs = REVALIDATE_MS,
  ) {
    this.merged = new MergedFsmetaBuilder(store, deps.mergeLayers);
  }

  /** Number of merges run so far (tests check single-flight with it). */
  get mergeCount(): number {
    return this.merged.merges;
  }

  async build(plan: FlatPlan, what: string): Promise<BuiltDisk> {
    const { inputs, cacheKey } = this.inputsOf(plan);
    let identities: string[] | undefined;

    // A GC may run whenever we await; files are pinned and re-checked in the
    // same tick, and a file collected in between is simply built again.
    for (let attempt = 1; ; attempt++) {
      const hit = this.cache.get(cacheKey);
      if (hit && hit.files.every((f) => fs.existsSync(f))) {
        if (Date.now() - hit.verifiedAt < this.revalidateMs) return this.result(hit, plan, true);
        identities ??= this.identitiesOf(inputs, what);
        if (hit.identities.every((id, i) => id === identities?.[i])) {
          hit.verifiedAt = Date.now();
          return this.result(hit, plan, true);
        }
      }
      identities ??= this.identitiesOf(inputs, what);
      let pending = this.inflight.get(cacheKey);
      if (!pending) {
        pending = this.compute(plan, what, identities);
        this.inflight.set(cacheKey, pending);
        const forget = () => this.inflight.delete(cacheKey);
        pending.then(forget, forget);
      }
      const entry = await pending;
      this.remember(cacheKey, entry);
      const built = this.result(entry, plan, false);
      if (entry.files.every((f) => fs.existsSync(f))) return built;
      built.release();
      if (attempt >= 3) throw new SnapshotterError('Internal', `${what}: store files keep vanishing while the descriptor is built`);
    }
  }

  /** The files the answer depends on, in order, and the cache key naming them. */
  private inputsOf(plan: FlatPlan): { inputs: string[]; cacheKey: string } {
    let known = this.planInputs.get(plan);
    if (known === undefined) {
      const inputs = plan.fsmeta !== undefined && plan.source !== 'merge' ? [plan.fsmeta, ...plan.layers] : [...plan.layers];
      if (plan.source === 'merge' && plan.fsmeta !== undefined) inputs.push(plan.fsmeta); // part of the answer's identity
      known = { inputs, cacheKey: JSON.stringify([plan.source, inputs]) };
      this.planInputs.set(plan, known);
    }
    return known;
  }

  /** (dev, inode, size, mtime) of every input; a missing input is FailedPrecondition naming it. */
  private identitiesOf(inputs: string[], what: string): string[] {
    const identities = inputs.map(statIdentity);
    const missing = inputs.filter((_, i) => identities[i] === undefined);
    if (missing.length > 0) {
      throw new SnapshotterError('FailedPrecondition', `${what}: layer file ${JSON.stringify(missing[0])} does not exist` +
        (missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''));
    }
    return identities as string[];
  }

  private result(entry: CacheEntry, plan: FlatPlan, cached: boolean): BuiltDisk {
    const release = this.store.pin(entry.files);
    return { descriptor: entry.descriptor, files: [...entry.files], layers: plan.layers.length, repaired: entry.repaired, merged: entry.merged, cached, release };
  }

  private remember(cacheKey: string, entry: CacheEntry): void {
    this.cache.delete(cacheKey);
    this.cache.set(cacheKey, entry);
    if (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
  }

  private async compute(plan: FlatPlan, what: string, identities: string[]): Promise<CacheEntry> {
    const files: string[] = [];
    let release = () => {};
    try {
      let input: FlatDiskInput;
      if (plan.source === 'merge') {
        const merged = await this.ensureMerged(plan.layers, what);
        release = merged.release;
        const mergedPath = merged.file;
        files.push(mergedPath);
        input = { fsmeta: mergedPath, layers: plan.layers };
      } else if (plan.source === 'fsmeta') {
        input = { fsmeta: plan.fsmeta as string, layers: plan.layers };
      } else {
        input = { layers: plan.layers };
      }
      const disk = this.prepare(input, what);
      if (disk.fsmetaPath !== undefined && disk.fsmetaPath.startsWith(this.store.fsmetaDir + '/') && !files.includes(disk.fsmetaPath)) {
        files.push(disk.fsmetaPath);
      }
      const descriptor = this.store.putDescriptor(this.render(disk.extents, what));
      files.unshift(descriptor);
      if (disk.repaired) {
        this.logger.warn({ problems: disk.problems.map((p) => p.message), fsmeta: disk.fsmetaPath }, `${what}: fsmeta device table repaired into a private copy`);
      }
      return { descriptor, files, identities, verifiedAt: Date.now(), repaired: disk.repaired, merged: plan.source === 'merge' };
    } finally {
      release();
    }
  }

  /** The merged fsmeta, pinned against GC in the same tick its existence was checked. */
  private async ensureMerged(layers: string[], what: string): Promise<{ file: string; release: () => void }> {
    for (let attempt = 1; ; attempt++) {
      const file = await this.merged.ensure(layers, what);
      if (fs.existsSync(file)) return { file, release: this.store.pin([file]) };
      if (attempt >= 3) throw new SnapshotterError('Internal', `${what}: merged fsmeta ${file} keeps vanishing`);
    }
  }

  private prepare(input: FlatDiskInput, what: string): FlatDisk {
    try {
      return this.deps.prepareFlatDisk(input, { repairDir: this.store.fsmetaDir });
    } catch (err) {
      if (err instanceof ErofsFormatError) {
        const kind = isPathProblem(err.code) ? 'InvalidArgument' : 'FailedPrecondition';
        throw new SnapshotterError(kind, `${what}: image refused (${err.code}): ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  private render(extents: Extent[], what: string): string {
    try {
      return this.deps.renderDescriptor(extents);
    } catch (err) {
      if (err instanceof VmdkError) {
        const kind = isPathProblem(err.code) ? 'InvalidArgument' : 'FailedPrecondition';
        throw new SnapshotterError(kind, `${what}: cannot write the descriptor (${err.code}): ${err.message}`, { cause: err });
      }
      throw err;
    }
  }
}
