/**
 * The remote backend's memory of the upstream's Mounts answers, per key.
 *
 * Keyed by the backend key alone: snapshotters keep one key space (containerd's
 * metadata layer puts the namespace into the key), and containerd's garbage
 * collector removes snapshots without any namespace, so an answer remembered
 * under a namespace must be forgotten by a Remove that carries none.
 *
 * Why it is safe: a snapshotter's Mounts answer for a snapshot is fixed for
 * the snapshot's life (containerd's snapshotters derive it from the snapshot's
 * id, kind, parent chain and labels, none of which change without a call), and
 * every call that changes a snapshot reaches the upstream through this daemon.
 * So an answer stays right until a Prepare/View/Commit/Remove/Update names the
 * same key, which forgets it. What this daemon cannot see is covered by two
 * more rules: losing the upstream connection (a restart, possibly with lost
 * state) forgets everything, and an answer is never older than the TTL, which
 * bounds how long a change made behind the daemon's back (someone talking to
 * the upstream's socket directly) goes unnoticed.
 *
 * Why it exists: without it every warm Mounts pays a second gRPC hop and the
 * decode of the upstream's per-layer mount list (docs/daemon.md, Benchmark).
 *
 * Races: an answer that was in flight while any key changed is not stored
 * (the epoch moved), so a Mounts that overlaps a Remove of its key can never
 * leave a stale entry behind. Errors are never stored.
 */
import { freezeMounts, type Mount } from '../../mount';

export interface MountsCacheOptions {
  /** How long an answer may be served without asking the upstream again; 0 disables the cache. */
  ttlMs: number;
  /** Least recently used answers beyond this count are dropped. */
  maxEntries: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

interface Entry {
  mounts: readonly Mount[];
  storedAt: number;
}

export type MountsCacheResult = 'hit' | 'miss';

export class MountsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  /** Moves on every change; an answer is stored only if it did not move while the answer was in flight. */
  private epoch = 0;

  constructor(private readonly options: MountsCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(key: string): Mount[] | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (this.now() - entry.storedAt >= this.options.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    // Map iteration order is insertion order: re-inserting makes it the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.mounts as Mount[];
  }

  /** Taken before asking the upstream; hand it back to store(). */
  beginLookup(): number {
    return this.epoch;
  }

  store(token: number, key: string, mounts: Mount[]): Mount[] {
    if (this.options.ttlMs <= 0 || token !== this.epoch) return mounts;
    this.entries.set(key, { mounts: freezeMounts(mounts), storedAt: this.now() });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return mounts;
  }

  /** The key is about to change (call before and after the change reaches the upstream). */
  forget(key: string): void {
    this.epoch++;
    this.entries.delete(key);
  }

  /** Anything may have changed (the upstream connection was lost, the backend closes). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
  }
}
