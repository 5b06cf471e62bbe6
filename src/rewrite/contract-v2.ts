/**
 * Mount contract v2 (docs/contract-v2.md): the flat plan as ONE entry of type
 * `fuse.erofs-vmdk-mount`. containerd's own mount code hands `fuse.*` types
 * to mount.fuse, which runs our host helper `erofs-vmdk-mount`, so the host
 * can mount the rootfs (ctr run and CRI read /etc/group there; runc mounts
 * it for real), while a VM runtime reads the same entry to attach one disk.
 *
 * The writable layer the v1 list expressed with extra mounts (an overlay with
 * host upper/work dirs, or a `mkfs/ext4` image) becomes options of the one
 * entry. Shapes that cannot be said that way are refused, naming the shape
 * and pointing at `contract = 1`, rather than guessed at.
 */
import type { Mount } from '../mount';
import { HOST_MOUNT_TYPE } from '../mount/contract-v2';
import { refuse, type PlanContext } from './errors';
import { isOverlayType, optionValue } from './overlay';
import { hasTemplate } from './templates';
import type { FlatPlan, WritableLayer } from './plan-types';

export { HOST_MOUNT_TYPE };
export const CONTRACT_V2_OPTIONS = ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] as const;

/** The v2 entry for a descriptor and the writable layer found by `writableLayerOf`. */
export function renderContractV2(writable: WritableLayer, descriptorPath: string): Mount[] {
  const options: string[] = writable.kind === 'none' ? ['ro', ...CONTRACT_V2_OPTIONS] : [...CONTRACT_V2_OPTIONS];
  if (writable.kind === 'directory') options.push(`upperdir=${writable.upperdir}`, `workdir=${writable.workdir}`);
  if (writable.kind === 'image') {
    options.push(
      `X-erofs-vmdk.upper-image=${writable.image}`,
      `X-erofs-vmdk.upper-image-size=${writable.size}`,
      `X-erofs-vmdk.upper-image-fs=${writable.fs}`,
    );
  }
  return [{ type: HOST_MOUNT_TYPE, source: descriptorPath, target: '', options }];
}

/**
 * What the mounts around the vmdk position (already renumbered: the vmdk
 * mount is `{{ mount <before.length> }}`) ask for on top of the EROFS root.
 */
export function writableLayerOf(ctx: PlanContext, plan: FlatPlan): WritableLayer {
  const { before, after } = plan;
  if (before.length === 0 && after.length === 0) return { kind: 'none' };
  if (before.length === 0 && after.length === 1) {
    const top = after[0];
    if (isReadOnlyBindOfRoot(top)) return { kind: 'none' };
    if (isOverlayType(top.type)) return directoryLayer(ctx, top);
  }
  if (before.length === 1 && after.length === 1 && before[0].type === 'mkfs/ext4' && isOverlayType(after[0].type)) {
    return imageLayer(ctx, before[0], after[0]);
  }
  const shape = [...before, { type: '<flat disk>' }, ...after].map((m) => m.type).join(', ');
  throw unexpressible(ctx, `the mount list [${shape}] has no contract v2 form`);
}

function unexpressible(ctx: PlanContext, reason: string): Error {
  return refuse(ctx, `${reason}; set contract = 1 for this profile to receive the vmdk mount list unchanged`);
}

function isReadOnlyBindOfRoot(m: Mount): boolean {
  const bind = m.type === 'bind' || m.type === 'format/bind' || m.type === 'rbind';
  return bind && m.source === '{{ mount 0 }}' && m.options.includes('ro') && m.options.every((o) => ['ro', 'rbind', 'bind'].includes(o));
}

/** Options of the overlay, each consumed at most once; what is left is refused. */
class OverlayOptions {
  private readonly left: string[];

  constructor(private readonly ctx: PlanContext, readonly mount: Mount) {
    this.left = [...mount.options];
  }

  take(name: string): string | undefined {
    const value = optionValue(this.left, name);
    if (value !== undefined) this.left.splice(this.left.indexOf(`${name}=${value}`), 1);
    return value;
  }

  takeExact(option: string): boolean {
    const i = this.left.indexOf(option);
    if (i >= 0) this.left.splice(i, 1);
    return i >= 0;
  }

  requireLower(expected: string): void {
    const lower = this.take('lowerdir');
    if (lower !== expected) {
      throw unexpressible(this.ctx, `the overlay's lowerdir is ${JSON.stringify(lower)}, not the flat disk alone (${expected})`);
    }
  }

  requireNothingElse(): void {
    if (this.left.length > 0) {
      throw unexpressible(this.ctx, `overlay option ${JSON.stringify(this.left[0])} cannot be carried by the contract v2 entry`);
    }
  }
}

function directoryLayer(ctx: PlanContext, overlay: Mount): WritableLayer {
  const options = new OverlayOptions(ctx, overlay);
  options.requireLower('{{ mount 0 }}');
  const upperdir = options.take('upperdir');
  const workdir = options.take('workdir');
  options.takeExact('rw');
  options.requireNothingElse();
  if (upperdir === undefined && workdir === undefined) return { kind: 'none' };
  if (upperdir === undefined || workdir === undefined) {
    throw unexpressible(ctx, 'the overlay has only one of upperdir and workdir');
  }
  checkOptionPath(ctx, 'upperdir', upperdir);
  checkOptionPath(ctx, 'workdir', workdir);
  return { kind: 'directory', upperdir, workdir };
}

/**
 * Block mode: `{mkfs/ext4, IMG, [X-containerd.mkfs.fs=ext4, X-containerd.mkfs.size=N, rw, loop]}`
 * and an overlay whose upper and work are `upper` and `work` inside it.
 */
function imageLayer(ctx: PlanContext, mkfs: Mount, overlay: Mount): WritableLayer {
  const image = mkfs.source;
  checkOptionPath(ctx, 'block-mode image', image);
  let size: number | undefined;
  for (const option of mkfs.options) {
    if (option === 'rw' || option === 'loop' || option === 'X-containerd.mkfs.fs=ext4') continue;
    const sizeText = optionValue([option], 'X-containerd.mkfs.size');
    if (sizeText !== undefined && /^[1-9][0-9]{0,15}$/.test(sizeText)) {
      size = Number(sizeText);
      continue;
    }
    throw unexpressible(ctx, `block-mode option ${JSON.stringify(option)} cannot be carried by the contract v2 entry`);
  }
  if (!mkfs.options.includes('X-containerd.mkfs.fs=ext4')) throw unexpressible(ctx, 'the block-mode layer is not ext4');
  if (size === undefined) throw unexpressible(ctx, 'the block-mode layer has no X-containerd.mkfs.size');

  const options = new OverlayOptions(ctx, overlay);
  options.requireLower('{{ mount 1 }}');
  const expected: [string, string][] = [['upperdir', '{{ mount 0 }}/upper'], ['workdir', '{{ mount 0 }}/work']];
  for (const [name, value] of expected) {
    if (options.take(name) !== value) throw unexpressible(ctx, `block-mode overlay ${name} is not ${value}`);
  }
  // The helper and VM runtimes create upper/ and work/ in the image: these mkdir requests are implied.
  options.takeExact('X-containerd.mkdir.path={{ mount 0 }}/upper:0755');
  options.takeExact('X-containerd.mkdir.path={{ mount 0 }}/work:0755');
  options.takeExact('rw');
  options.requireNothingElse();
  return { kind: 'image', image, size, fs: 'ext4' };
}

/** A path that becomes part of a comma-separated option string on the host. */
function checkOptionPath(ctx: PlanContext, what: string, p: string): void {
  if (!p.startsWith('/') || hasTemplate(p)) throw unexpressible(ctx, `${what} ${JSON.stringify(p)} is not an absolute path`);
  if (/[,\s"\0]/.test(p)) throw refuse(ctx, `${what} ${JSON.stringify(p)} contains a comma, whitespace, quote or NUL, which a mount option cannot carry`);
}
