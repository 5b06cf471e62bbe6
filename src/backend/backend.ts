import type { Mount } from '../mount';

/**
 * The one interface every upstream snapshotter implements (embedded EROFS
 * snapshotter, remote gRPC snapshotter). Keys and names are the backend keys
 * the proxy core hands down (already made unique per profile); errors are
 * SnapshotterError from src/errdefs.
 */

/** containerd.services.snapshots.v1.Kind numbering. */
export type SnapshotKind = 'unknown' | 'view' | 'active' | 'committed';

export interface SnapshotInfo {
  name: string;
  /** '' when the snapshot has no parent. */
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

export interface SnapshotUsage {
  /** Bytes. */
  size: number;
  inodes: number;
}

/** Per-call context: the containerd namespace (absent for GC calls) and cancellation. */
export interface CallContext {
  namespace?: string;
  signal?: AbortSignal;
}

export interface Backend {
  prepare(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]>;
  view(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]>;
  mounts(ctx: CallContext, key: string): Promise<Mount[]>;
  /** parent: CommitSnapshotRequest.parent (containerd >= 2.2 rebase); '' when unset. */
  commit(ctx: CallContext, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void>;
  remove(ctx: CallContext, key: string): Promise<void>;
  stat(ctx: CallContext, key: string): Promise<SnapshotInfo>;
  /** fieldPaths: [] (replace labels), ['labels'], ['labels.<k>', ...]; anything else is InvalidArgument. */
  update(ctx: CallContext, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo>;
  /** filters: containerd filter strings, OR-ed; each may AND with ','. */
  list(ctx: CallContext, filters: string[]): AsyncIterable<SnapshotInfo>;
  usage(ctx: CallContext, key: string): Promise<SnapshotUsage>;
  cleanup(ctx: CallContext): Promise<void>;
  close(): Promise<void>;
}
