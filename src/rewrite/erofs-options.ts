/**
 * Options of the erofs lower mounts that the vmdk mount replaces. The vmdk
 * mount's options are fixed by contract v1 (`ro,X-vmdk.fs=erofs,
 * X-vmdk.layout=flat`), so an option of a layer mount is either meaningless for
 * the flat disk (dropped) or changes what the guest would see (refused). Nothing
 * is silently carried over or lost.
 */
import { refuse, type PlanContext } from './errors';

/**
 * Dropped without loss:
 * - `ro`, `loop`: the flat disk is attached read-only as one block device;
 * - access-time and `nodev`/`nosuid`/`noexec` flags of a *lower*: lowers are
 *   never exposed directly, the overlay/bind mount on top decides;
 * - `user_xattr`, `acl`: EROFS defaults, the guest mount gets them anyway.
 */
const DROPPED = new Set(['ro', 'loop', 'noatime', 'nodiratime', 'relatime', 'nodev', 'nosuid', 'noexec', 'user_xattr', 'acl']);

export interface ErofsMountOptions {
  /** `device=` values in order (bottom layer first). */
  devices: string[];
}

export function parseErofsOptions(ctx: PlanContext, index: number, options: string[]): ErofsMountOptions {
  const devices: string[] = [];
  const where = `erofs mount ${index}`;
  for (const option of options) {
    if (DROPPED.has(option)) continue;
    if (option.startsWith('device=')) {
      devices.push(option.slice('device='.length));
      continue;
    }
    if (option === 'rw') throw refuse(ctx, `${where} is read-write; EROFS layers are read-only`);
    if (option === 'X-containerd.dmverity=off') continue; // verification explicitly not wanted: nothing is lost
    if (option.startsWith('X-containerd.dmverity')) {
      // containerd opens a dm-verity device over the layer blob. A flat disk
      // reads the blob directly, so the guest would get the data unverified:
      // refuse instead of silently dropping the integrity check.
      throw refuse(ctx, `${where} asks for dm-verity (${option}); a flat vmdk disk would bypass the verification`);
    }
    if (option.startsWith('uidmap=') || option.startsWith('gidmap=')) {
      // An idmapped layer mount would need the mapping on the guest's erofs
      // mount, which contract v1 has no option for (idmaps on the overlay or
      // bind mount above are kept unchanged).
      throw refuse(ctx, `${where} has an id mapping (${option.split('=')[0]}); the vmdk mount cannot carry it`);
    }
    throw refuse(ctx, `${where} has option ${JSON.stringify(option)} that the vmdk mount cannot express`);
  }
  return { devices };
}
