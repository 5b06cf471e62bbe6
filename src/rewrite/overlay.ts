/**
 * Helpers for the overlay mount that sits on top of the rewritten lowers.
 */
import type { Mount } from '../mount';
import { refuse, type PlanContext } from './errors';

/** `overlay`, or an overlay behind mount-manager prefixes (`format/mkdir/overlay`). */
export function isOverlayType(type: string): boolean {
  if (type === 'overlay') return true;
  const parts = type.split('/');
  return parts[parts.length - 1] === 'overlay' && parts.slice(0, -1).every((p) => p === 'format' || p === 'mkdir');
}

export function optionValue(options: string[], name: string): string | undefined {
  const found = options.find((o) => o.startsWith(`${name}=`));
  return found === undefined ? undefined : found.slice(name.length + 1);
}

/** Options that only mean something to overlayfs; a bind mount does not need them. */
const OVERLAY_ONLY = /^(lowerdir|index|redirect_dir|metacopy|xino|nfs_export|uuid|verity)=|^(userxattr|volatile)$/;

/**
 * overlayfs refuses a single lowerdir without an upperdir. When collapsing the
 * erofs run leaves a read-only view with one lower, the overlay becomes what
 * containerd itself emits for that case: `{format/bind, "{{ mount k }}", [ro, rbind]}`.
 */
export function viewOverlayAsBind(ctx: PlanContext, index: number, m: Mount, lower: string): Mount {
  for (const option of m.options) {
    if (OVERLAY_ONLY.test(option) || option === 'ro' || option === 'rbind') continue;
    if (option.startsWith('uidmap=') || option.startsWith('gidmap=')) {
      throw refuse(ctx, `mount ${index} is a read-only view with an id mapping (${option.split('=')[0]}); ` +
        'after flattening it would have to become a bind mount, which cannot carry it');
    }
    throw refuse(ctx, `mount ${index} is a read-only view; after flattening it must become a bind mount, ` +
      `which cannot carry option ${JSON.stringify(option)}`);
  }
  return { type: 'format/bind', source: lower, target: m.target, options: ['ro', 'rbind'] };
}
