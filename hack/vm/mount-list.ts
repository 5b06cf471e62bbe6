/**
 * Validates a container rootfs mount list against the mount contracts v2
 * (docs/contract-v2.md) and v1 (design §4) and turns it into a guest plan.
 * Strict on purpose: this is the reference consumer, and a VM shim that
 * guesses at an unknown shape boots a wrong or writable root. Anything outside
 * these shapes is refused with the index and field that broke the rule.
 *
 * Contract v2: exactly ONE mount, type fuse.erofs-vmdk-mount, source the
 * descriptor, options (any order, each at most once):
 *
 *   ro + common                              read-only root (a view)
 *   common + upperdir=/abs workdir=/abs      directory mode: host dirs -> guest tmpfs upper
 *   common + X-erofs-vmdk.upper-image=/abs   block mode: the ext4 image is a second disk,
 *     + X-erofs-vmdk.upper-image-size=N      overlay upper /upper, work /work inside it
 *     + X-erofs-vmdk.upper-image-fs=ext4
 *   common = X-erofs-vmdk.contract=2 X-vmdk.fs=erofs X-vmdk.layout=flat
 *
 * Contract v1:
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
import { CONTRACT_V2_VALUE_OPTIONS, HOST_MOUNT_TYPE } from '../../src/mount/contract-v2';
import { checkFlatDescriptor, isInside, requireCanonical, type FlatDescriptor } from './vmdk-descriptor';

export const VMDK_V1_OPTIONS = ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] as const;
/** Contract v2: the one mount's type (containerd hands `fuse.*` to mount.fuse on the host). */
export const V2_MOUNT_TYPE = HOST_MOUNT_TYPE;
export const V2_CONTRACT_OPTION = 'X-erofs-vmdk.contract';
/** Keys of the v2 options; everything else is refused. */
const V2_OPTION_KEYS = new Set<string>(['ro', ...CONTRACT_V2_VALUE_OPTIONS]);
const V2_BLOCK_KEYS = ['X-erofs-vmdk.upper-image', 'X-erofs-vmdk.upper-image-size', 'X-erofs-vmdk.upper-image-fs'] as const;
/** The smallest writable-layer image accepted (both contracts). */
const MIN_UPPER_IMAGE_BYTES = 1 << 20;
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
      /** Bytes to create it with when it does not exist yet or is empty (X-containerd.mkfs.size, X-erofs-vmdk.upper-image-size). */
      createSize: number;
      /** upperdir/workdir relative to the ext4 root, e.g. "upper", "work". */
      upperSubdir: string;
      workSubdir: string;
    };

export interface GuestPlan {
  /** Which mount contract the list used. */
  contract: 1 | 2;
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
  return checkDescriptorSource(m, i, allowedDirs);
}

/** The descriptor named by a vmdk (v1) or fuse.erofs-vmdk-mount (v2) mount, checked with every extent. */
function checkDescriptorSource(m: Mount, i: number, allowedDirs: string[]): FlatDescriptor {
  if (!m.source.endsWith('.vmdk')) throw new MountListError(`mounts[${i}] (${m.type}) source ${m.source} does not end in .vmdk`);
  try {
    return checkFlatDescriptor(m.source, allowedDirs);
  } catch (err) {
    throw new MountListError(`mounts[${i}] (${m.type}): ${(err as Error).message}`);
  }
}

/** Bytes of a writable-layer image size option: a decimal integer ≥ 1 MiB. */
function imageSize(text: string | undefined, what: string): number {
  const size = /^[1-9][0-9]*$/.test(text ?? '') ? Number(text) : NaN;
  if (!Number.isSafeInteger(size) || size < MIN_UPPER_IMAGE_BYTES) {
    throw new MountListError(`${what} needs <bytes ≥ 1 MiB>, got ${JSON.stringify(text ?? '')}`);
  }
  return size;
}

/**
 * A writable-layer image (v1 mkfs/ext4 source, v2 X-erofs-vmdk.upper-image):
 * it may not exist yet (it is created on first use), so when missing only its
 * folder must already be canonical and allowed.
 */
function checkUpperImagePath(image: string, what: string, allowedDirs: string[]): string {
  try {
    return requireCanonical(image, what, allowedDirs);
  } catch (err) {
    if (!(err as Error).message.endsWith('does not exist')) throw new MountListError((err as Error).message);
    const dir = path.dirname(image);
    if (!path.isAbsolute(image) || /[\s"]/.test(image) || !fs.existsSync(dir) || fs.realpathSync(dir) !== dir) {
      throw new MountListError(`${what} ${image}: folder missing, relative or symlinked`);
    }
    if (!allowedDirs.some((a) => isInside(dir, a))) {
      throw new MountListError(`${what} ${image} is outside the allowed folders`);
    }
    return image;
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
  const createSize = imageSize(opts.get('X-containerd.mkfs.size'), `mounts[${i}] (mkfs/ext4) X-containerd.mkfs.size`);
  if (m.target !== '') throw new MountListError(`mounts[${i}] (mkfs/ext4) has a target; not supported`);
  // The image may not exist yet (containerd's mkfs transformer creates it on first use).
  const image = checkUpperImagePath(m.source, `mounts[${i}] (mkfs/ext4) source`, allowedDirs);
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
  // containerd's mkdir/ transformer options (block mode: "{{ mount 0 }}/upper:0755"): the guest creates
  // upperdir/workdir itself, so they are checked against those and dropped.
  const mkdirPaths = m.options.filter((o) => o.startsWith('X-containerd.mkdir.path='));
  const opts = optionMap({ ...m, options: m.options.filter((o) => !mkdirPaths.includes(o)) }, i);
  if (mkdirPaths.length > 0) {
    if (!m.type.includes('mkdir/') || ext4Index === undefined) {
      throw new MountListError(`mounts[${i}] (${m.type}) has ${mkdirPaths[0]}: only a block-mode mkdir/ overlay may carry X-containerd.mkdir.path`);
    }
    const dirs = [opts.get('upperdir'), opts.get('workdir')];
    for (const option of mkdirPaths) {
      const value = option.slice('X-containerd.mkdir.path='.length).replace(/:0?[0-7]{3,4}$/, '');
      if (!dirs.includes(value) || mkdirPaths.filter((o) => o === option).length > 1) {
        throw new MountListError(`mounts[${i}] (${m.type}) ${option} must name its upperdir or workdir once`);
      }
    }
  }
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
 * Contract v2 (docs/contract-v2.md): the single fuse.erofs-vmdk-mount entry.
 * Refuses unknown options, any contract but 2, a view with a writable layer,
 * directory and block options together, half a directory or block set, and
 * relative paths.
 */
function planV2(m: Mount, allowedDirs: string[]): GuestPlan {
  const what = `mounts[0] (${V2_MOUNT_TYPE})`;
  if (m.target !== '') throw new MountListError(`${what} has target ${JSON.stringify(m.target)}; a rootfs mount has none`);
  const opts = optionMap(m, 0);
  const contract = opts.get(V2_CONTRACT_OPTION);
  if (!opts.has(V2_CONTRACT_OPTION)) throw new MountListError(`${what} has no ${V2_CONTRACT_OPTION}= option; refusing a mount of unknown contract`);
  if (contract !== '2') {
    throw new MountListError(`${what} has ${V2_CONTRACT_OPTION}=${contract ?? ''}: this consumer speaks contract 2 (and v1's vmdk mount); refusing a newer or different contract`);
  }
  for (const [key, value] of opts) {
    if (!V2_OPTION_KEYS.has(key)) {
      throw new MountListError(`${what} has unknown option ${value === undefined ? key : `${key}=${value}`}: not part of mount contract v2`);
    }
    if ((key === 'ro') !== (value === undefined)) {
      throw new MountListError(`${what} option ${key}${value === undefined ? ' needs a value' : `=${value} takes no value`}`);
    }
  }
  for (const [key, want] of [['X-vmdk.fs', 'erofs'], ['X-vmdk.layout', 'flat']] as const) {
    if (opts.get(key) !== want) throw new MountListError(`${what} needs ${key}=${want}, got ${opts.has(key) ? `${key}=${opts.get(key)}` : 'none'}`);
  }
  const dirMode = opts.has('upperdir') || opts.has('workdir');
  const blockMode = V2_BLOCK_KEYS.some((k) => opts.has(k));
  if (dirMode && blockMode) {
    throw new MountListError(`${what} mixes directory mode (upperdir/workdir) and block mode (X-erofs-vmdk.upper-image*): a container has exactly one of them`);
  }
  const readOnly = opts.has('ro');
  if (readOnly && (dirMode || blockMode)) throw new MountListError(`${what} has ro and a writable layer: a view has neither upperdir/workdir nor an upper image`);
  if (!readOnly && !dirMode && !blockMode) throw new MountListError(`${what} has neither ro (a view) nor a writable layer (upperdir/workdir or X-erofs-vmdk.upper-image)`);

  let upper: UpperPlan = { kind: 'none' };
  if (dirMode) {
    for (const key of ['upperdir', 'workdir']) {
      const value = opts.get(key);
      if (value === undefined) throw new MountListError(`${what} has ${key === 'upperdir' ? 'workdir' : 'upperdir'} without ${key}`);
      // Host folders: only host mounts use them, so they are not opened here; they must still be plain absolute paths.
      if (!path.isAbsolute(value) || value.includes('{{')) throw new MountListError(`${what} ${key}=${value} must be an absolute host folder`);
    }
    upper = { kind: 'tmpfs' };
  } else if (blockMode) {
    for (const key of V2_BLOCK_KEYS) {
      if (!opts.has(key)) throw new MountListError(`${what} block mode needs ${V2_BLOCK_KEYS.join(', ')}; ${key} is missing`);
    }
    const fsType = opts.get('X-erofs-vmdk.upper-image-fs');
    if (fsType !== 'ext4') throw new MountListError(`${what} has X-erofs-vmdk.upper-image-fs=${fsType}; only ext4 is defined`);
    const createSize = imageSize(opts.get('X-erofs-vmdk.upper-image-size'), `${what} X-erofs-vmdk.upper-image-size`);
    const image = checkUpperImagePath(opts.get('X-erofs-vmdk.upper-image')!, `${what} X-erofs-vmdk.upper-image`, allowedDirs);
    upper = { kind: 'ext4', image, createSize, upperSubdir: 'upper', workSubdir: 'work' };
  }
  const descriptor = checkDescriptorSource(m, 0, allowedDirs);
  // Block mode: /upper and /work are created in the image when missing (contract v2).
  return { contract: 2, descriptor, upper, overlayOptions: [], mkdirUpper: upper.kind === 'ext4' };
}

/**
 * Validates `mounts` against contract v2 or v1 and returns what the guest must do.
 * `allowedDirs` are canonical folders; the descriptor, its extents and a
 * block-mode upper image must be inside one of them.
 */
export function planGuest(mounts: Mount[], allowedDirs: string[]): GuestPlan {
  if (allowedDirs.length === 0) throw new MountListError('no allowed folder given (--allow-dir)');
  const types = mounts.map((m) => m.type).join(', ') || 'none';
  // A v2 option or helper name on any other type is a mistake, not a v1 mount.
  for (const [i, m] of mounts.entries()) {
    if (m.type === V2_MOUNT_TYPE) continue;
    const v2Option = m.options.find((o) => o.startsWith('X-erofs-vmdk.'));
    if (v2Option || m.type.includes('erofs-vmdk-mount')) {
      throw new MountListError(
        `mounts[${i}] has type ${JSON.stringify(m.type)}${v2Option ? ` with ${v2Option}` : ''}: a contract v2 mount has type ${V2_MOUNT_TYPE}`,
      );
    }
  }
  if (mounts.some((m) => m.type === V2_MOUNT_TYPE)) {
    if (mounts.length !== 1) {
      throw new MountListError(`a contract v2 rootfs is exactly one ${V2_MOUNT_TYPE} mount, got ${mounts.length} mounts (types: ${types})`);
    }
    return planV2(mounts[0], allowedDirs);
  }
  const vmdkIndexes = mounts.flatMap((m, i) => (m.type === 'vmdk' ? [i] : []));
  if (vmdkIndexes.length !== 1) {
    throw new MountListError(
      `expected exactly one vmdk mount (contract v1) or one ${V2_MOUNT_TYPE} mount (contract v2), found ${vmdkIndexes.length} vmdk (types: ${types})`,
    );
  }
  const vmdkIndex = vmdkIndexes[0];
  const shape = mounts.map((m) => (OVERLAY_TYPES.has(m.type) ? 'overlay' : m.type)).join(',');
  const descriptor = checkVmdkMount(mounts[vmdkIndex], vmdkIndex, allowedDirs);

  switch (shape) {
    case 'vmdk':
      return { contract: 1, descriptor, upper: { kind: 'none' }, overlayOptions: [], mkdirUpper: false };
    case 'vmdk,format/bind': {
      const bind = mounts[1];
      const opts = [...bind.options].sort().join(',');
      if (bind.source !== mountRef(0) || !['rbind,ro', 'ro', 'bind,ro'].includes(opts)) {
        throw new MountListError(`mounts[1] (format/bind) must be {source: "${mountRef(0)}", options: [ro, rbind]}`);
      }
      return { contract: 1, descriptor, upper: { kind: 'none' }, overlayOptions: [], mkdirUpper: false };
    }
    case 'vmdk,overlay': {
      const overlay = checkOverlay(mounts[1], 1, 0, undefined);
      if (overlay.upper !== 'host' && overlay.upper !== 'none') throw new MountListError('mounts[1]: unexpected upper');
      return {
        contract: 1,
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
        contract: 1,
        descriptor,
        upper: { kind: 'ext4', image: ext4.image, createSize: ext4.createSize, ...overlay.upper },
        overlayOptions: overlay.options,
        mkdirUpper: mounts[2].type.includes('mkdir/'),
      };
    }
    default:
      throw new MountListError(
        `mount types [${types}] are not a vmdk contract v1 rootfs shape ` +
          `([vmdk], [vmdk, format/bind], [vmdk, overlay], [mkfs/ext4, vmdk, overlay]) nor contract v2 ([${V2_MOUNT_TYPE}])`,
      );
  }
}
