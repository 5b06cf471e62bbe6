/**
 * Validates a container rootfs mount list against the vmdk mount contract v1
 * (design §4) and turns it into a guest plan. Strict on purpose: this is the
 * reference consumer, and a VM shim that guesses at an unknown shape boots a
 * wrong or writable root. Anything outside these shapes is refused with the
 * index and field that broke the rule:
 *
 *   [vmdk]                                   read-only root (a view)
 *   [vmdk, format/bind "{{ mount 0 }}" ro]   read-only root (a view)
 *   [vmdk, overlay]                          overlay with lowerdir={{ mount 0 }},
 *                                            host upperdir/workdir -> guest tmpfs upper
 *   [mkfs/ext4, vmdk, overlay]               block-mode upper: the ext4 image is a
 *                                            second disk, upperdir={{ mount 0 }}/upper
 *
 * "overlay" is any of overlay, format/overlay, mkdir/overlay, format/mkdir/overlay
 * (the format/ and mkdir/ prefixes are containerd mount-manager transformers
 * that only matter on the host; the guest does their job).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Mount } from '../../src/mount/index';
import { checkFlatDescriptor, isInside, requireCanonical, type FlatDescriptor } from './vmdk-descriptor';

export const VMDK_V1_OPTIONS = ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] as const;
const OVERLAY_TYPES = new Set(['overlay', 'format/overlay', 'mkdir/overlay', 'format/mkdir/overlay']);
/** overlayfs options passed through to the guest as they are. */
const OVERLAY_PASSTHROUGH = /^(index=(on|off)|redirect_dir=(on|off|follow|nofollow)|metacopy=(on|off)|xino=(on|off|auto)|userxattr|volatile)$/;

export type UpperPlan =
  | { kind: 'none' }
  | { kind: 'tmpfs' }
  | {
      kind: 'ext4';
      /** Host image file (block-mode rwlayer.img). */
      image: string;
      /** Bytes to create it with when it does not exist yet (X-containerd.mkfs.size). */
      createSize: number;
      /** upperdir/workdir relative to the ext4 root, e.g. "upper", "work". */
      upperSubdir: string;
      workSubdir: string;
    };

export interface GuestPlan {
  descriptor: FlatDescriptor;
  upper: UpperPlan;
  /** Extra overlay options (index=off, …) in their original order. */
  overlayOptions: string[];
  /** Whether the mkdir/ transformer asked for upperdir/workdir to be created. */
  mkdirUpper: boolean;
}

export class MountListError extends Error {
  constructor(message: string) {
    super(`mount list: ${message}`);
    this.name = 'MountListError';
  }
}

/** Parses JSON text into Mount[] with every field checked (containerd's shape). */
export function parseMountListJson(text: string): Mount[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MountListError(`not valid JSON: ${(err as Error).message}`);
  }
  // Accept the bare list and containerd's MountsResponse shape {"mounts": [...]}.
  if (value && typeof value === 'object' && !Array.isArray(value) && 'mounts' in value) {
    value = (value as { mounts: unknown }).mounts;
  }
  if (!Array.isArray(value)) throw new MountListError('expected a JSON array of mounts');
  return value.map((raw, i) => {
    if (!raw || typeof raw !== 'object') throw new MountListError(`mounts[${i}] is not an object`);
    const m = raw as Record<string, unknown>;
    for (const key of Object.keys(m)) {
      if (!['type', 'source', 'target', 'options'].includes(key)) throw new MountListError(`mounts[${i}] has unknown field ${key}`);
    }
    const str = (key: string, required: boolean): string => {
      const v = m[key];
      if (v === undefined && !required) return '';
      if (typeof v !== 'string') throw new MountListError(`mounts[${i}].${key} must be a string`);
      return v;
    };
    const options = m.options ?? [];
    if (!Array.isArray(options) || !options.every((o) => typeof o === 'string')) {
      throw new MountListError(`mounts[${i}].options must be an array of strings`);
    }
    return { type: str('type', true), source: str('source', true), target: str('target', false), options: options as string[] };
  });
}

function optionMap(m: Mount, i: number): Map<string, string | undefined> {
  const map = new Map<string, string | undefined>();
  for (const option of m.options) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    if (map.has(key)) throw new MountListError(`mounts[${i}] (${m.type}) repeats option ${key}`);
    map.set(key, eq < 0 ? undefined : option.slice(eq + 1));
  }
  return map;
}

/** Checks the vmdk mount itself: exact v1 options, source under an allowed folder. */
function checkVmdkMount(m: Mount, i: number, allowedDirs: string[]): FlatDescriptor {
  const unknownVmdkOption = m.options.find((o) => o.startsWith('X-vmdk.') && !(VMDK_V1_OPTIONS as readonly string[]).includes(o));
  if (unknownVmdkOption) {
    throw new MountListError(
      `mounts[${i}] (vmdk) has ${unknownVmdkOption}: not part of the vmdk mount contract v1 (${VMDK_V1_OPTIONS.join(',')}); refusing a newer or different contract`,
    );
  }
  const got = [...m.options].sort();
  const want = [...VMDK_V1_OPTIONS].sort();
  if (got.length !== want.length || got.some((o, k) => o !== want[k])) {
    throw new MountListError(`mounts[${i}] (vmdk) options ${JSON.stringify(m.options)} must be exactly ${JSON.stringify(VMDK_V1_OPTIONS)}`);
  }
  if (m.target !== '') throw new MountListError(`mounts[${i}] (vmdk) has target ${JSON.stringify(m.target)}; v1 rootfs mounts have none`);
  if (!m.source.endsWith('.vmdk')) throw new MountListError(`mounts[${i}] (vmdk) source ${m.source} does not end in .vmdk`);
  try {
    return checkFlatDescriptor(m.source, allowedDirs);
  } catch (err) {
    throw new MountListError(`mounts[${i}] (vmdk): ${(err as Error).message}`);
  }
}

const mountRef = (index: number) => `{{ mount ${index} }}`;

function checkExt4Mount(m: Mount, i: number, allowedDirs: string[]): { image: string; createSize: number } {
  const opts = optionMap(m, i);
  for (const key of opts.keys()) {
    if (!['X-containerd.mkfs.fs', 'X-containerd.mkfs.size', 'rw', 'loop'].includes(key)) {
      throw new MountListError(`mounts[${i}] (mkfs/ext4) has unsupported option ${key}`);
    }
  }
  if (opts.has('X-containerd.mkfs.fs') && opts.get('X-containerd.mkfs.fs') !== 'ext4') {
    throw new MountListError(`mounts[${i}] (mkfs/ext4) has X-containerd.mkfs.fs=${opts.get('X-containerd.mkfs.fs')}`);
  }
  const sizeText = opts.get('X-containerd.mkfs.size') ?? '';
  const createSize = /^[1-9][0-9]*$/.test(sizeText) ? Number(sizeText) : NaN;
  if (!Number.isSafeInteger(createSize) || createSize < 1 << 20) {
    throw new MountListError(`mounts[${i}] (mkfs/ext4) needs X-containerd.mkfs.size=<bytes ≥ 1 MiB>, got ${JSON.stringify(sizeText)}`);
  }
  if (m.target !== '') throw new MountListError(`mounts[${i}] (mkfs/ext4) has a target; not supported`);
  // The image may not exist yet (containerd's mkfs transformer creates it on
  // first use), so only its folder must already be canonical and allowed.
  let image = m.source;
  try {
    image = requireCanonical(m.source, `mounts[${i}] (mkfs/ext4) source`, allowedDirs);
  } catch (err) {
    if (!(err as Error).message.endsWith('does not exist')) throw new MountListError((err as Error).message);
    const dir = path.dirname(m.source);
    if (!path.isAbsolute(m.source) || /[\s"]/.test(m.source) || !fs.existsSync(dir) || fs.realpathSync(dir) !== dir) {
      throw new MountListError(`mounts[${i}] (mkfs/ext4) source ${m.source}: folder missing, relative or symlinked`);
    }
    if (!allowedDirs.some((a) => isInside(dir, a))) {
      throw new MountListError(`mounts[${i}] (mkfs/ext4) source ${m.source} is outside the allowed folders`);
    }
  }
  return { image, createSize };
}

/** Reads `{{ mount N }}/sub` (block-mode upper/work) -> sub, or undefined when not a reference to `index`. */
function subdirOf(value: string | undefined, index: number): string | undefined {
  if (value === undefined || !value.startsWith(`${mountRef(index)}/`)) return undefined;
  const sub = value.slice(mountRef(index).length + 1);
  return /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(sub) && !sub.split('/').includes('..') ? sub : undefined;
}

function checkOverlay(
  m: Mount,
  i: number,
  vmdkIndex: number,
  ext4Index: number | undefined,
): { upper: 'host' | { upperSubdir: string; workSubdir: string } | 'none'; options: string[] } {
  if (m.source !== 'overlay') throw new MountListError(`mounts[${i}] (${m.type}) source must be "overlay", got ${JSON.stringify(m.source)}`);
  if (m.target !== '') throw new MountListError(`mounts[${i}] (${m.type}) has a target; not supported`);
  const opts = optionMap(m, i);
  const lower = opts.get('lowerdir');
  if (lower !== mountRef(vmdkIndex)) {
    throw new MountListError(
      `mounts[${i}] (${m.type}) lowerdir=${lower} must be exactly "${mountRef(vmdkIndex)}": in contract v1 the vmdk mount is the only lower`,
    );
  }
  const passthrough: string[] = [];
  for (const [key, value] of opts) {
    if (['lowerdir', 'upperdir', 'workdir'].includes(key)) continue;
    const option = value === undefined ? key : `${key}=${value}`;
    if (!OVERLAY_PASSTHROUGH.test(option)) {
      throw new MountListError(`mounts[${i}] (${m.type}) option ${option} is not supported by this consumer (idmapped or unknown)`);
    }
    passthrough.push(option);
  }
  const upperdir = opts.get('upperdir');
  const workdir = opts.get('workdir');
  if (upperdir === undefined && workdir === undefined) return { upper: 'none', options: passthrough };
  if (upperdir === undefined || workdir === undefined) {
    throw new MountListError(`mounts[${i}] (${m.type}) has ${upperdir === undefined ? 'workdir' : 'upperdir'} without the other`);
  }
  if (ext4Index !== undefined) {
    const upperSubdir = subdirOf(upperdir, ext4Index);
    const workSubdir = subdirOf(workdir, ext4Index);
    if (!upperSubdir || !workSubdir) {
      throw new MountListError(`mounts[${i}] (${m.type}) upperdir/workdir must be "${mountRef(ext4Index)}/<dir>" with a mkfs/ext4 upper`);
    }
    return { upper: { upperSubdir, workSubdir }, options: passthrough };
  }
  for (const [key, value] of [['upperdir', upperdir], ['workdir', workdir]] as const) {
    if (value.includes('{{') || !value.startsWith('/')) {
      throw new MountListError(`mounts[${i}] (${m.type}) ${key}=${value} must be an absolute host folder`);
    }
  }
  return { upper: 'host', options: passthrough };
}

/**
 * Validates `mounts` against contract v1 and returns what the guest must do.
 * `allowedDirs` are canonical folders; the descriptor, its extents and a
 * block-mode upper image must be inside one of them.
 */
export function planGuest(mounts: Mount[], allowedDirs: string[]): GuestPlan {
  if (allowedDirs.length === 0) throw new MountListError('no allowed folder given (--allow-dir)');
  const vmdkIndexes = mounts.flatMap((m, i) => (m.type === 'vmdk' ? [i] : []));
  if (vmdkIndexes.length !== 1) {
    const types = mounts.map((m) => m.type).join(', ') || 'none';
    throw new MountListError(`expected exactly one vmdk mount, found ${vmdkIndexes.length} (types: ${types})`);
  }
  const vmdkIndex = vmdkIndexes[0];
  const shape = mounts.map((m) => (OVERLAY_TYPES.has(m.type) ? 'overlay' : m.type)).join(',');
  const descriptor = checkVmdkMount(mounts[vmdkIndex], vmdkIndex, allowedDirs);

  switch (shape) {
    case 'vmdk':
      return { descriptor, upper: { kind: 'none' }, overlayOptions: [], mkdirUpper: false };
    case 'vmdk,format/bind': {
      const bind = mounts[1];
      const opts = [...bind.options].sort().join(',');
      if (bind.source !== mountRef(0) || !['rbind,ro', 'ro', 'bind,ro'].includes(opts)) {
        throw new MountListError(`mounts[1] (format/bind) must be {source: "${mountRef(0)}", options: [ro, rbind]}`);
      }
      return { descriptor, upper: { kind: 'none' }, overlayOptions: [], mkdirUpper: false };
    }
    case 'vmdk,overlay': {
      const overlay = checkOverlay(mounts[1], 1, 0, undefined);
      if (overlay.upper !== 'host' && overlay.upper !== 'none') throw new MountListError('mounts[1]: unexpected upper');
      return {
        descriptor,
        upper: overlay.upper === 'host' ? { kind: 'tmpfs' } : { kind: 'none' },
        overlayOptions: overlay.options,
        mkdirUpper: mounts[1].type.includes('mkdir/'),
      };
    }
    case 'mkfs/ext4,vmdk,overlay': {
      const ext4 = checkExt4Mount(mounts[0], 0, allowedDirs);
      const overlay = checkOverlay(mounts[2], 2, 1, 0);
      if (typeof overlay.upper !== 'object') throw new MountListError('mounts[2]: block-mode overlay needs upperdir/workdir');
      return {
        descriptor,
        upper: { kind: 'ext4', image: ext4.image, createSize: ext4.createSize, ...overlay.upper },
        overlayOptions: overlay.options,
        mkdirUpper: mounts[2].type.includes('mkdir/'),
      };
    }
    default:
      throw new MountListError(
        `mount types [${mounts.map((m) => m.type).join(', ')}] are not a vmdk contract v1 rootfs shape ` +
          '([vmdk], [vmdk, format/bind], [vmdk, overlay], [mkfs/ext4, vmdk, overlay])',
      );
  }
}
