/**
 * Native fsmerge: builds the metadata-only EROFS image (fsmeta) that merges
 * per-layer EROFS blobs with overlay semantics (design §7).
 *
 * NOT BUILT YET: the issue "Native fsmerge" replaces this placeholder. Callers
 * already code against this signature.
 */
export interface MergeLayer {
  /** Path of the layer's EROFS blob. */
  path: string;
  /** Device-table tag for this layer's slot (default: derived from the blob). */
  tag?: string;
}

export class MergeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'MergeError';
  }
}

/** Layers bottom first (like mkfs.erofs and device= order). Returns the fsmeta bytes. */
export function mergeLayers(layers: MergeLayer[]): Buffer {
  throw new MergeError('not-built', `native fsmerge is not built yet (asked to merge ${layers.length} layers)`);
}
