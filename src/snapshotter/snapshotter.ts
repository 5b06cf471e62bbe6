import type { CallContext, SnapshotInfo, SnapshotUsage } from '../backend/backend';
import type { Mount } from '../mount';

/**
 * What the gRPC server calls: the Snapshots API with the request's
 * `snapshotter` field (the profile name) on every call. Implemented by the
 * proxy core (src/snapshotter/proxy.ts), which maps profiles to backend keys,
 * forwards to the Backend, and rewrites mounts for rewrite profiles.
 */
export interface ProfiledSnapshotter {
  prepare(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]>;
  view(ctx: CallContext, profile: string, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]>;
  mounts(ctx: CallContext, profile: string, key: string): Promise<Mount[]>;
  commit(ctx: CallContext, profile: string, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void>;
  remove(ctx: CallContext, profile: string, key: string): Promise<void>;
  stat(ctx: CallContext, profile: string, key: string): Promise<SnapshotInfo>;
  update(ctx: CallContext, profile: string, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo>;
  list(ctx: CallContext, profile: string, filters: string[]): AsyncIterable<SnapshotInfo>;
  usage(ctx: CallContext, profile: string, key: string): Promise<SnapshotUsage>;
  cleanup(ctx: CallContext, profile: string): Promise<void>;
  close(): Promise<void>;
}
