/**
 * argv and option parsing for `erofs-vmdk-mount SRC TARGET [-o OPTS]...`.
 *
 * mount.fuse3 always calls the helper as `NAME SRC TARGET -o opt1,opt2,…`
 * (it joins several `-o`, appends `dev,suid` unless `nodev`/`nosuid` were
 * given, and drops its own flags such as -n/-v/-s/-f); containerd calls
 * mount.fuse3 with one `-o` per option. We accept the positional pair and any
 * number of `-o X` / `-oX`, nothing else.
 *
 * Options are exactly those of contract v2 (docs/contract-v2.md) plus the
 * generic flags mount.fuse3 and containerd add. Pure: no file system access.
 */
import { CONTRACT_V2_VALUE_OPTIONS } from '../mount/contract-v2';
import { refuse, show } from './errors';

export const CONTRACT_VERSION = '2';
/** Smallest upper image we create: mkfs.ext4 needs room for its metadata. */
export const MIN_UPPER_IMAGE_BYTES = 1 << 20;

export type Upper =
  | { kind: 'none' }
  | { kind: 'dir'; upperdir: string; workdir: string }
  | { kind: 'image'; image: string; size: number; fs: 'ext4' };

export interface HelperRequest {
  source: string;
  target: string;
  upper: Upper;
  /** Final mount read-only: `ro`/`rw`, last one wins (a view is always read-only). */
  readOnly: boolean;
  nodev: boolean;
  nosuid: boolean;
  noexec: boolean;
}

const VALUE_OPTIONS = new Set<string>(CONTRACT_V2_VALUE_OPTIONS);

/** Generic flags: name → [which flag, value]. */
const FLAGS: Record<string, ['ro' | 'nodev' | 'nosuid' | 'noexec', boolean]> = {
  ro: ['ro', true],
  rw: ['ro', false],
  nodev: ['nodev', true],
  dev: ['nodev', false],
  nosuid: ['nosuid', true],
  suid: ['nosuid', false],
  noexec: ['noexec', true],
  exec: ['noexec', false],
};

export const USAGE = 'usage: erofs-vmdk-mount SRC TARGET [-o OPTIONS]...';

/** Splits argv into SRC, TARGET and the comma-separated option items. */
export function splitArgv(argv: readonly string[]): { source: string; target: string; items: string[] } {
  const positional: string[] = [];
  const items: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-o') {
      if (i + 1 >= argv.length) refuse(`-o needs a value; ${USAGE}`);
      items.push(...argv[++i].split(','));
    } else if (a.startsWith('-o') && a.length > 2) {
      items.push(...a.slice(2).split(','));
    } else if (a.startsWith('-') && a.length > 1) {
      refuse(`unknown argument ${show(a)}; ${USAGE}`);
    } else {
      positional.push(a);
    }
  }
  if (positional.length !== 2) refuse(`expected SRC and TARGET, got ${positional.length} positional arguments; ${USAGE}`);
  return { source: positional[0], target: positional[1], items: items.filter((o) => o !== '') };
}

function positiveInteger(value: string, what: string): number {
  const n = /^[1-9][0-9]*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) refuse(`option ${what}=${show(value)} is not a positive integer (bytes)`);
  return n;
}

export function parseArguments(argv: readonly string[]): HelperRequest {
  const { source, target, items } = splitArgv(argv);
  const values = new Map<string, string>();
  const flags = { ro: undefined as boolean | undefined, nodev: false, nosuid: false, noexec: false };
  for (const item of items) {
    const flag = FLAGS[item];
    if (flag) {
      flags[flag[0]] = flag[1];
      continue;
    }
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (eq < 0 || !VALUE_OPTIONS.has(key)) refuse(`unknown option ${show(item)}`);
    const value = item.slice(eq + 1);
    if (values.has(key)) refuse(`option ${key} given twice`);
    if (value === '') refuse(`option ${key} has an empty value`);
    values.set(key, value);
  }

  const contract = values.get('X-erofs-vmdk.contract');
  if (contract === undefined) refuse(`missing option X-erofs-vmdk.contract=${CONTRACT_VERSION}`);
  if (contract !== CONTRACT_VERSION) refuse(`option X-erofs-vmdk.contract=${show(contract)}: only contract ${CONTRACT_VERSION} is supported`);
  const fsType = values.get('X-vmdk.fs');
  if (fsType !== undefined && fsType !== 'erofs') refuse(`option X-vmdk.fs=${show(fsType)}: only erofs is supported`);
  const layout = values.get('X-vmdk.layout');
  if (layout !== undefined && layout !== 'flat') refuse(`option X-vmdk.layout=${show(layout)}: only flat is supported`);

  const upperdir = values.get('upperdir');
  const workdir = values.get('workdir');
  const image = values.get('X-erofs-vmdk.upper-image');
  const size = values.get('X-erofs-vmdk.upper-image-size');
  const imageFs = values.get('X-erofs-vmdk.upper-image-fs');
  const dirMode = upperdir !== undefined || workdir !== undefined;
  const imageMode = image !== undefined || size !== undefined || imageFs !== undefined;
  if (dirMode && imageMode) refuse('options upperdir/workdir and X-erofs-vmdk.upper-image* exclude each other');

  let upper: Upper = { kind: 'none' };
  if (dirMode) {
    if (upperdir === undefined) refuse('option workdir needs upperdir');
    if (workdir === undefined) refuse('option upperdir needs workdir');
    upper = { kind: 'dir', upperdir, workdir };
  } else if (imageMode) {
    if (image === undefined) refuse('missing option X-erofs-vmdk.upper-image (block mode needs all three upper-image options)');
    if (size === undefined) refuse('missing option X-erofs-vmdk.upper-image-size (block mode needs all three upper-image options)');
    if (imageFs === undefined) refuse('missing option X-erofs-vmdk.upper-image-fs (block mode needs all three upper-image options)');
    if (imageFs !== 'ext4') refuse(`option X-erofs-vmdk.upper-image-fs=${show(imageFs)}: only ext4 is supported`);
    const bytes = positiveInteger(size, 'X-erofs-vmdk.upper-image-size');
    if (bytes < MIN_UPPER_IMAGE_BYTES) refuse(`option X-erofs-vmdk.upper-image-size=${size}: at least ${MIN_UPPER_IMAGE_BYTES} bytes`);
    upper = { kind: 'image', image, size: bytes, fs: 'ext4' };
  }

  return {
    source,
    target,
    upper,
    readOnly: upper.kind === 'none' ? true : flags.ro === true,
    nodev: flags.nodev,
    nosuid: flags.nosuid,
    noexec: flags.noexec,
  };
}
