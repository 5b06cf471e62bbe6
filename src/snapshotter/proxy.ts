/**
 * The proxy core: what the gRPC server calls (ProfiledSnapshotter).
 *
 * - The request's `snapshotter` field selects a profile; profiles never see
 *   each other's snapshots (profile-keys.ts).
 * - Every call is forwarded to the one Backend.
 * - Prepare/View/Mounts results of a rewrite profile go through the pure
 *   planner (src/rewrite); a flat plan is materialised into the store
 *   (flat-disk-builder.ts) and the key's references are recorded, so the
 *   descriptor lives exactly as long as some snapshot uses it.
 * - Remove/Commit drop references; Cleanup drops references of snapshots the
 *   backend no longer has and deletes unreferenced store files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type pino from 'pino';
import type { Backend, CallContext, SnapshotInfo, SnapshotUsage } from '../backend/backend';
import { invalidArgument, isKind, SnapshotterError } from '../errdefs';
import { prepareFlatDisk } from '../erofs/flat-layout';
import { mergeLayers } from '../merge';
import type { Mount } from '../mount';
import { planRewrite, renderMounts, type FlatPlan, type RewriteEnv, type RewritePlan } from '../rewrite';
import { Store, type StoreCounts } from '../store';
import { renderDescriptor } from '../vmdk';
import { FlatDiskBuilder, type FlatDiskDeps } from './flat-disk-builder';
import { planList } from './list-filters';
import { ProfileKeys, type ProfileConfig } from './profile-keys';
import type { ProfiledSnapshotter } from './snapshotter';

export type RewriteOutcome = 'flat' | 'refused' | 'passthrough';

export interface ProxyOptions {
  root: string;
  backend: Backend;
  profiles: Record<string, ProfileConfig>;
  logger: pino.Logger;
  observer?: { onRewrite(outcome: RewriteOutcome): void };
}

export type ProxySnapshotterApi = ProfiledSnapshotter & { storeCounts(): StoreCounts };

/** Seams for tests and benchmarks; production uses the defaults. */
export interface ProxyInternals {
  deps?: Partial<FlatDiskDeps>;
  env?: RewriteEnv;
  /** See REVALIDATE_MS in flat-disk-builder.ts. */
  revalidateMs?: number;
}

const DEFAULT_DEPS: FlatDiskDeps = {
  prepareFlatDisk,
  renderDescriptor: (extents) => renderDescriptor(extents),
  mergeLayers,
};

/**
 * Opens (or creates) the store under `root`, runs start-up GC and returns the
 * proxy core. Synchronous; throws on an unusable root or profile set.
 */
export function createProxySnapshotter(options: ProxyOptions): ProxySnapshotterApi {
  return new ProxySnapshotter(options);
}

/**
 * Legacy overlay lowerdirs (`<dir>/fs`, the mount point of the layer): the blob
 * is `<dir>/layer.erofs`, like containerd's EROFS snapshotter lays it out.
 */
export const legacyLayerEnv: RewriteEnv = {
  legacyLayerOf(lowerdir: string): string | undefined {
    if (path.basename(lowerdir) !== 'fs') return undefined;
    let dir = path.dirname(lowerdir);
    if (path.normalize(dir) !== dir) {
      // `..` after a symlink: the kernel resolves the symlink first, path.join
      // would just drop the previous component and name another snapshot's blob.
      try {
        dir = fs.realpathSync.native(dir);
      } catch {
        return undefined;
      }
    }
    const blob = path.join(dir, 'layer.erofs');
    const st = fs.statSync(blob, { throwIfNoEntry: false });
    return st && st.isFile() ? blob : undefined;
  },
};

interface Profile {
  name: string;
  rewrite: boolean;
  contract: 1 | 2;
  keys: ProfileKeys;
}

function requireKey(value: string, what: string): void {
  if (typeof value !== 'string' || value.length === 0) throw invalidArgument(`${what} must not be empty`);
}

export class ProxySnapshotter implements ProxySnapshotterApi {
  readonly store: Store;
  readonly builder: FlatDiskBuilder;
  private readonly backend: Backend;
  private readonly profiles = new Map<string, Profile>();
  private readonly logger: pino.Logger;
  private readonly observer?: { onRewrite(outcome: RewriteOutcome): void };
  private readonly env: RewriteEnv;
  /**
   * Plans of answers the backend shares between calls (frozen: the remote
   * backend's remembered Mounts answers, the embedded backend's built ones):
   * a warm Mounts then skips re-checking every lower path. The plan lives
   * exactly as long as the shared answer.
   */
  private readonly sharedAnswerPlans = new WeakMap<readonly Mount[], { profile: string; key: string; plan: RewritePlan }>();
  private closed = false;

  constructor(options: ProxyOptions, internals: ProxyInternals = {}) {
    const names = Object.keys(options.profiles);
    if (names.length === 0) throw invalidArgument('at least one profile is required');
    for (const name of names) {
      const rewrite = options.profiles[name]?.rewrite;
      if (typeof rewrite !== 'boolean') throw invalidArgument(`profile ${name}: rewrite must be true or false`);
      const contract = options.profiles[name]?.contract ?? 2;
      if (contract !== 1 && contract !== 2) throw invalidArgument(`profile ${name}: contract must be 1 or 2`);
      this.profiles.set(name, { name, rewrite, contract, keys: new ProfileKeys(name) });
    }
    this.backend = options.backend;
    this.logger = options.logger;
    this.observer = options.observer;
    this.env = internals.env ?? legacyLayerEnv;
    this.store = Store.open(options.root);
    this.builder = new FlatDiskBuilder(this.store, { ...DEFAULT_DEPS, ...internals.deps }, this.logger, internals.revalidateMs);
  }

  private profile(name: string): Profile {
    const p = this.profiles.get(name);
    if (!p) {
      const known = [...this.profiles.keys()].join(', ');
      throw invalidArgument(`unknown snapshotter profile ${JSON.stringify(name)}; known profiles: ${known}`);
    }
    return p;
  }

  // ---- calls that return mounts ---------------------------------------------

  async prepare(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    const mounts = await this.backend.prepare(ctx, p.keys.toBackend(key), p.keys.parentToBackend(parent), labels);
    return this.finishCreate(ctx, p, key, mounts);
  }

  async view(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    const mounts = await this.backend.view(ctx, p.keys.toBackend(key), p.keys.parentToBackend(parent), labels);
    return this.finishCreate(ctx, p, key, mounts);
  }

  async mounts(ctx: CallContext, profile: string, key: string): Promise<Mount[]> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    const mounts = await this.backend.mounts(ctx, p.keys.toBackend(key));
    return this.rewrite(p, key, mounts);
  }

  /**
   * A snapshot whose mounts cannot be rewritten is removed from the backend
   * again, so the failed Prepare/View leaves nothing behind and containerd's
   * retry with the same key does not meet AlreadyExists.
   */
  private async finishCreate(ctx: CallContext, p: Profile, key: string, mounts: Mount[]): Promise<Mount[]> {
    try {
      return await this.rewrite(p, key, mounts);
    } catch (err) {
      try {
        await this.backend.remove(ctx, p.keys.toBackend(key));
      } catch (removeErr) {
        this.logger.warn({ key, profile: p.name, err: (removeErr as Error).message }, 'could not remove the snapshot whose mounts were refused');
      }
      throw err;
    }
  }

  private plan(p: Profile, key: string, mounts: Mount[]): RewritePlan {
    const shared = Object.isFrozen(mounts);
    const known = shared ? this.sharedAnswerPlans.get(mounts) : undefined;
    if (known !== undefined && known.profile === p.name && known.key === key) return known.plan;
    const plan = planRewrite({ key, profile: p.name, rewrite: p.rewrite, mounts, contract: p.contract }, this.env);
    if (shared) this.sharedAnswerPlans.set(mounts, { profile: p.name, key, plan });
    return plan;
  }

  private async rewrite(p: Profile, key: string, mounts: Mount[]): Promise<Mount[]> {
    let plan;
    try {
      plan = this.plan(p, key, mounts);
    } catch (err) {
      this.refused(p, key, err);
      throw err;
    }
    if (plan.kind === 'passthrough') {
      this.observer?.onRewrite('passthrough');
      this.logger.debug({ key, profile: p.name, outcome: 'passthrough', reason: plan.reason }, 'mounts passed through');
      return mounts;
    }
    return this.flatten(p, key, plan);
  }

  private async flatten(p: Profile, key: string, plan: FlatPlan): Promise<Mount[]> {
    const what = `key ${JSON.stringify(key)} (profile ${p.name})`;
    let built;
    try {
      built = await this.builder.build(plan, what);
    } catch (err) {
      this.refused(p, key, err, plan.layers.length);
      throw err;
    }
    try {
      this.store.setReferences(p.name, key, built.files);
    } finally {
      built.release();
    }
    this.observer?.onRewrite('flat');
    // Info when a descriptor was actually built or checked again; a warm cache
    // hit (every later Mounts of a running container) only at debug, so the
    // info log holds one line per rewrite rather than one per call.
    const level = built.cached ? 'debug' : 'info';
    this.logger[level]({
      key, profile: p.name, layers: built.layers, outcome: 'flat', source: plan.source, shape: plan.shape, contract: plan.contract,
      repaired: built.repaired, merged: built.merged, cached: built.cached, descriptor: built.descriptor,
    }, 'mounts rewritten to a flat vmdk');
    return renderMounts(plan, built.descriptor);
  }

  private refused(p: Profile, key: string, err: unknown, layers?: number): void {
    const outcome: RewriteOutcome = 'refused';
    this.observer?.onRewrite(outcome);
    const kind = err instanceof SnapshotterError ? err.kind : 'Internal';
    this.logger.info({ key, profile: p.name, layers, outcome, kind, reason: (err as Error).message }, 'mount rewrite refused');
  }

  // ---- everything else: forwarded with the profile prefix --------------------

  async commit(ctx: CallContext, profile: string, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void> {
    const p = this.profile(profile);
    requireKey(name, 'name');
    requireKey(key, 'key');
    await this.backend.commit(ctx, p.keys.toBackend(name), p.keys.toBackend(key), labels, p.keys.parentToBackend(parent));
    // The active snapshot is gone; its descriptor (if any) is garbage unless shared.
    this.store.dropReferences(p.name, key);
  }

  async remove(ctx: CallContext, profile: string, key: string): Promise<void> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    try {
      await this.backend.remove(ctx, p.keys.toBackend(key));
    } catch (err) {
      // Already gone from the backend: our references to it are stale either way.
      if (isKind(err, 'NotFound')) this.store.dropReferences(p.name, key);
      throw err;
    }
    this.store.dropReferences(p.name, key);
  }

  async stat(ctx: CallContext, profile: string, key: string): Promise<SnapshotInfo> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    return p.keys.requireInfo(await this.backend.stat(ctx, p.keys.toBackend(key)), key);
  }

  async update(ctx: CallContext, profile: string, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo> {
    const p = this.profile(profile);
    requireKey(info?.name, 'info.name');
    const backendInfo: SnapshotInfo = { ...info, name: p.keys.toBackend(info.name), parent: p.keys.parentToBackend(info.parent ?? '') };
    return p.keys.requireInfo(await this.backend.update(ctx, backendInfo, fieldPaths), info.name);
  }

  async *list(ctx: CallContext, profile: string, filters: string[]): AsyncIterable<SnapshotInfo> {
    const p = this.profile(profile);
    const plan = planList(filters, p.keys);
    for await (const info of this.backend.list(ctx, plan.backendFilters)) {
      const mapped = p.keys.infoFromBackend(info);
      if (mapped && plan.matches(mapped)) yield mapped;
    }
  }

  async usage(ctx: CallContext, profile: string, key: string): Promise<SnapshotUsage> {
    const p = this.profile(profile);
    requireKey(key, 'key');
    return this.backend.usage(ctx, p.keys.toBackend(key));
  }

  async cleanup(ctx: CallContext, profile: string): Promise<void> {
    const p = this.profile(profile);
    await this.backend.cleanup(ctx);
    const dropped = await this.dropStaleReferences(ctx, p);
    const gc = this.store.collectGarbage();
    this.logger.info({ profile: p.name, staleKeys: dropped, removed: gc.removed, temps: gc.temps }, 'cleanup: store garbage collected');
  }

  /**
   * References of keys the backend no longer has (removed behind our back, or
   * a crash between the backend's Remove and ours). Only references recorded
   * before the listing started are judged, so a Prepare racing with Cleanup
   * keeps its descriptor.
   */
  private async dropStaleReferences(ctx: CallContext, p: Profile): Promise<number> {
    const startedAt = Date.now();
    const live = new Set<string>();
    for await (const info of this.backend.list(ctx, [])) {
      const key = p.keys.fromBackend(info.name);
      if (key !== undefined) live.add(key);
    }
    let dropped = 0;
    for (const { key, recordedAt } of this.store.referencingKeys(p.name)) {
      if (!live.has(key) && recordedAt < startedAt) {
        this.store.dropReferences(p.name, key);
        dropped++;
      }
    }
    return dropped;
  }

  storeCounts(): StoreCounts {
    return this.store.counts();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.store.close();
    await this.backend.close();
  }
}
