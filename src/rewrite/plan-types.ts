import type { Mount } from '../mount';

/** Why mounts are returned unchanged. */
export type PassthroughReason =
  /** The profile has `rewrite = false`. */
  | 'profile'
  /** Image unpack (containerd's EROFS differ needs the original mounts). */
  | 'extract-key'
  /** Nothing to flatten: no erofs lower (e.g. a parentless bind mount). */
  | 'no-erofs-lower'
  /** Legacy overlay whose lowerdirs are not EROFS layers (another snapshotter). */
  | 'not-erofs-layers';

export interface PassthroughPlan {
  kind: 'passthrough';
  reason: PassthroughReason;
}

/**
 * How the flat disk's metadata is obtained:
 * - `single`: one plain layer is the whole disk (no fsmeta needed);
 * - `fsmeta`: the backend's fsmeta (mounted with `device=` options) covers every layer;
 * - `merge`: several layers and no fsmeta covering them all: build one.
 */
export type FlatSource = 'single' | 'fsmeta' | 'merge';

export interface FlatPlan {
  kind: 'flat';
  source: FlatSource;
  /** `mount-manager` = containerd >= 2.2 erofs mounts; `legacy` = overlay of `<dir>/fs` lowerdirs. */
  shape: 'mount-manager' | 'legacy';
  /** Every layer blob, bottom first (= device-table slot order). */
  layers: string[];
  /** The backend's fsmeta (source `fsmeta`, or `merge` when plain lowers sit above it). */
  fsmeta?: string;
  /** How many of `layers` (from the bottom) the backend's fsmeta covers. */
  fsmetaLayers: number;
  /** Mounts before the vmdk mount, already renumbered. */
  before: Mount[];
  /** Mounts after the vmdk mount, already renumbered. */
  after: Mount[];
  /** Which mount contract `renderMounts` speaks (docs/contract-v2.md). */
  contract: MountContract;
  /** Contract 2: the writable layer on top of the EROFS root, read off `before`/`after`. */
  writable?: WritableLayer;
}

/** 1: the `vmdk` entry in place of the erofs run; 2: one host-mountable `fuse.erofs-vmdk-mount` entry. */
export type MountContract = 1 | 2;

/** What a contract v2 entry puts on top of the read-only EROFS root. */
export type WritableLayer =
  | { kind: 'none' }
  | { kind: 'directory'; upperdir: string; workdir: string }
  | { kind: 'image'; image: string; size: number; fs: 'ext4' };

export type RewritePlan = PassthroughPlan | FlatPlan;

export interface RewriteInput {
  /** The containerd key (as the client sent it, without our profile prefix). */
  key: string;
  /** Profile name, for messages. */
  profile: string;
  /** The profile's `rewrite` setting. */
  rewrite: boolean;
  /** Mounts as the backend returned them. */
  mounts: Mount[];
  /** The profile's mount contract (default 1 here; profiles default to 2 in the config). */
  contract?: MountContract;
}

/**
 * The only I/O the planner may need, injected so it stays pure: for a legacy
 * overlay lowerdir (`<dir>/fs`, where the snapshotter mounted the layer), the
 * layer blob behind it (`<dir>/layer.erofs`) or undefined when there is none.
 */
export interface RewriteEnv {
  legacyLayerOf(lowerdir: string): string | undefined;
}

/** The contract v1 mount (design §4). */
export const VMDK_MOUNT_OPTIONS = ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] as const;

/** Upper bound on layers: a descriptor must stay under 1100 lines (design §5). */
export const MAX_LAYERS = 1000;
