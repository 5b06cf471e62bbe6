/**
 * The names of mount contract v2 (docs/contract-v2.md), shared by the planner
 * that writes the entry, the host mount helper that mounts it and the
 * reference VM consumer that reads it. No imports: the helper loads this on
 * every container start.
 */

/** containerd hands `fuse.*` types to mount.fuse, which runs `erofs-vmdk-mount`. */
export const HOST_MOUNT_TYPE = 'fuse.erofs-vmdk-mount';

/** Every `name=value` option the entry may carry; `ro` is its only flag. */
export const CONTRACT_V2_VALUE_OPTIONS = [
  'X-erofs-vmdk.contract',
  'X-vmdk.fs',
  'X-vmdk.layout',
  'upperdir',
  'workdir',
  'X-erofs-vmdk.upper-image',
  'X-erofs-vmdk.upper-image-size',
  'X-erofs-vmdk.upper-image-fs',
] as const;
