/**
 * Merged fsmeta for layers that arrive without one (released containerd no
 * longer creates fsmeta.erofs, and a legacy overlay never has one).
 *
 * The merge result is addressed by the layers' identities, not by its bytes:
 * the name must be known *before* merging, so a second request for the same
 * layers finds the file instead of merging again. The identity of a layer is
 * its real path, device, inode, size and mtime: containerd never rewrites a
 * committed layer blob in place, and if anything did, the identity (and so the
 * file name) would change and a fresh fsmeta would be built. Concurrent
 * requests for the same identity share one build (single-flight).
 */
import * as fs from 'node:fs';
import { SnapshotterError } from '../errdefs';
import { MergeError, type MergeLayer } from '../merge';
import type { Store } from '../store';
import { sha256 } from '../store';

export type MergeFn = (layers: MergeLayer[]) => Buffer;

/** Bumped when the merge output for the same layers may change (new merger version). */
const MERGE_IDENTITY_VERSION = 'erofs-vmdk-merge-v1';

export function layerIdentity(file: string): string {
  // .native: the kernel's resolution (symlinks before `..`); the JS version normalises `..` lexically.
  const real = fs.realpathSync.native(file);
  const st = fs.statSync(real);
  return JSON.stringify([real, st.dev, st.ino, st.size, st.mtimeMs]);
}

export function mergedFsmetaDigest(layers: string[]): string {
  return sha256([MERGE_IDENTITY_VERSION, ...layers.map(layerIdentity)].join('\n'));
}

export class MergedFsmetaBuilder {
  private readonly inflight = new Map<string, Promise<string>>();
  /** How many merges actually ran (for tests and logs). */
  merges = 0;

  constructor(private readonly store: Store, private readonly merge: MergeFn) {}

  /**
   * Path of the merged fsmeta for these layers (bottom first), building it if
   * needed. `what` names the request in errors ("key ... (profile ...)").
   * The caller must pin the returned path before yielding to the event loop.
   */
  async ensure(layers: string[], what: string): Promise<string> {
    let digest: string;
    try {
      digest = mergedFsmetaDigest(layers);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === undefined) throw err;
      throw new SnapshotterError('FailedPrecondition', `${what}: cannot read a layer to merge (${code}): ${(err as Error).message}`);
    }
    const file = this.store.fsmetaPath(digest);
    if (fs.existsSync(file)) return file;
    let pending = this.inflight.get(digest);
    if (!pending) {
      pending = Promise.resolve().then(() => this.build(digest, layers, what));
      this.inflight.set(digest, pending);
      const forget = () => this.inflight.delete(digest);
      pending.then(forget, forget);
    }
    return pending;
  }

  private build(digest: string, layers: string[], what: string): string {
    let bytes: Buffer;
    try {
      this.merges++;
      bytes = this.merge(layers.map((path) => ({ path })));
    } catch (err) {
      if (err instanceof MergeError && err.code === 'not-built') {
        throw new SnapshotterError('FailedPrecondition',
          `${what}: fsmerge metadata is missing (${layers.length} layers arrive without a merged fsmeta) ` +
          `and native merge is not built yet: ${err.message}`);
      }
      if (err instanceof MergeError) {
        throw new SnapshotterError('FailedPrecondition', `${what}: cannot merge ${layers.length} layers into an fsmeta: ${err.message} (${err.code})`);
      }
      throw err;
    }
    return this.store.putFsmetaAs(digest, bytes);
  }
}
