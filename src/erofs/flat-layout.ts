/**
 * Flat-device layout of an fsmeta + layer blobs (design §4–§6): validate the
 * fsmeta's device table against the concatenation `fsmeta ‖ L1 ‖ … ‖ Ln` (whole
 * files, offset 0), repair a COPY when only slot fields are wrong, and produce
 * the descriptor extents.
 *
 * Why every slot is recomputed: the kernel trusts `uniaddr` in flat mode with no
 * bounds check, and the superblock CRC often does not cover the table (512-byte
 * blocks, >= 32 devices). This check is the only guard against silently wrong
 * file data.
 *
 * Units: slot blocks/uniaddr are in fsmeta blocks. A layer may have larger
 * blocks than the fsmeta (mixedbs: repairable); never smaller (its chunk
 * addresses were truncated by mkfs, mixedbs-bottom512: refused).
 *
 * Tar-index layers (`mkfs.erofs --tar=i` + appended tar): the layer's own device
 * table has one slot whose device is the tar appended after the index. The
 * fsmeta's chunk addresses count from the start of that tar, so the fsmeta slot
 * must point at it: uniaddr = start of the layer file + the layer's own uniaddr
 * ("variant b" of the taridx fixture), blocks = the tar data blocks. The extent
 * covers the index and the tar data the layer's own slot declares.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../atomic/write-file-atomic';
import type { DeviceLayout } from '../vmdk/lint';
import { contentAddressedPathProblem, extentPathProblem } from '../vmdk/paths';
import type { Extent } from '../vmdk/descriptor';
import { MAX_DESCRIPTOR_LINES, SECTOR_SIZE } from '../vmdk/descriptor';
import { ErofsFormatError } from './errors';
import { FEATURE_COMPAT, type DeviceSlot, type Superblock } from './superblock';
import { writeSuperblockChecksum } from './checksum';
import { checkImageHeader, problem, readImage, readImageHead, readImageHeadFd, OPEN_INPUT_FLAGS, type ImageHeader, type ImageInput, type LayoutProblem } from './image';

export type { ImageInput, LayoutProblem } from './image';

/** Problems a repaired copy fixes. Anything else refuses the layout. */
export const REPAIRABLE_CODES: ReadonlySet<string> = new Set(['slot-blocks', 'slot-uniaddr', 'slot-tag-empty']);

export class FlatLayoutError extends ErofsFormatError {
  readonly problems: LayoutProblem[];
  constructor(problems: LayoutProblem[]) {
    const first = problems.find((p) => !REPAIRABLE_CODES.has(p.code)) ?? problems[0];
    const more = problems.length > 1 ? ` (+${problems.length - 1} more: ${[...new Set(problems.filter((p) => p !== first).map((p) => p.code))].join(', ')})` : '';
    super(first.code, `${first.message}${more}`, first.file);
    this.problems = problems;
    this.name = 'FlatLayoutError';
  }
}

export interface BlobLayout {
  file: string;
  /** plain: the whole image is the device; tar-index: the appended tar is. */
  kind: 'plain' | 'tar-index';
  blockSize: number;
  /** Bytes [0, regionBytes) of the file are part of the flat disk. */
  regionBytes: number;
  /** Byte offset in the file where the device data starts (chunk addresses count from here). */
  dataOffset: number;
  /** Flat-disk block (fsmeta units) where the file starts. */
  start: number;
  /** What the fsmeta slot must hold. */
  tag: string;
  blocks: number;
  uniaddr: number;
}

export interface FlatLayout {
  blockSize: number;
  primaryBlocks: number;
  blobs: BlobLayout[];
  totalBlocks: number;
}

export interface FlatLayoutReport {
  problems: LayoutProblem[];
  /** The correct layout, when the inputs allowed computing it. */
  layout?: FlatLayout;
  /** There are problems and every one is of a repairable kind. */
  repairable: boolean;
  superblock?: Superblock;
  slots: DeviceSlot[];
}

function toInput(x: ImageInput | string): ImageInput | LayoutProblem {
  if (typeof x !== 'string') return x;
  try {
    return readImageHead(x);
  } catch (err) {
    if (err instanceof ErofsFormatError) return { code: err.code, message: err.message, file: x };
    const e = err as NodeJS.ErrnoException;
    return problem(e.code === 'ENOENT' ? 'missing-file' : 'unreadable-file', x, e.message.replace(/^[A-Z]+: /, ''));
  }
}

function isProblem(x: ImageInput | LayoutProblem): x is LayoutProblem {
  return (x as LayoutProblem).code !== undefined;
}

function uuidHex(sb: Superblock): string {
  return Buffer.from(sb.uuidBytes).toString('hex');
}

interface BlobShape {
  blockSize: number;
  kind: 'plain' | 'tar-index';
  regionBytes: number;
  dataOffset: number;
  deviceBytes: number;
  tag: string;
}

/** What part of a layer file is its device (plain image, or the tar of a tar-index image). */
function blobShape(h: ImageHeader, image: ImageInput, problems: LayoutProblem[]): BlobShape | undefined {
  const sb = h.sb as Superblock;
  const bs = sb.blockSize;
  if (!sb.hasDeviceTable) {
    return { blockSize: bs, kind: 'plain', regionBytes: sb.blocks * bs, dataOffset: 0, deviceBytes: sb.blocks * bs, tag: uuidHex(sb) };
  }
  if (sb.extraDevices !== 1 || h.slots.length !== 1) {
    problems.push(problem('layer-has-devices', image.file, `layer image has ${sb.extraDevices} extra devices of its own (only tar-index layers with exactly 1 are supported)`));
    return undefined;
  }
  const own = h.slots[0];
  if (own.uniaddr < sb.blocks) {
    problems.push(problem('tar-index-layout', image.file, `tar-index layer: its tar starts at block ${own.uniaddr}, inside its own ${sb.blocks}-block index`));
    return undefined;
  }
  const dataOffset = own.uniaddr * bs;
  return { blockSize: bs, kind: 'tar-index', regionBytes: dataOffset + own.blocks * bs, dataOffset, deviceBytes: own.blocks * bs, tag: own.tag !== '' ? own.tag : uuidHex(sb) };
}

function checkRegion(image: ImageInput, shape: BlobShape, problems: LayoutProblem[]): void {
  if (shape.regionBytes <= 0) problems.push(problem('empty-image', image.file, 'image declares 0 blocks'));
  // A plain layer shorter than its superblock says is already reported as file-short.
  const already = problems.some((p) => p.code === 'file-short' && p.file === image.file);
  if (image.size < shape.regionBytes && !already) {
    problems.push(problem('layer-short', image.file, `${image.size} bytes, shorter than its ${shape.regionBytes}-byte extent`));
  }
}

/**
 * A single image used alone (no fsmeta): the descriptor is that one file. Plain
 * images and tar-index images (their own table points at the appended tar) work.
 */
export function validateSingleImage(input: ImageInput | string): FlatLayoutReport {
  const image = toInput(input);
  if (isProblem(image)) return { problems: [image], repairable: false, slots: [] };
  const h = checkImageHeader(image);
  const problems = [...h.problems];
  const report: FlatLayoutReport = { problems, repairable: false, slots: h.slots, superblock: h.sb };
  if (h.fatal || !h.sb) return report;
  const shape = blobShape(h, image, problems);
  if (!shape) return report;
  checkRegion(image, shape, problems);
  if (problems.length === 0) {
    // For a tar-index image the disk is the index plus its tar: regionBytes, not sb.blocks.
    const blocks = shape.regionBytes / h.sb.blockSize;
    report.layout = { blockSize: h.sb.blockSize, primaryBlocks: blocks, blobs: [], totalBlocks: blocks };
  }
  return report;
}

function compareSlot(slot: DeviceSlot, want: BlobLayout, fsmeta: string, all: BlobLayout[], problems: LayoutProblem[]): void {
  if (slot.tag === want.tag && slot.blocks === want.blocks && slot.uniaddr === want.uniaddr) return; // the common case, fast
  const name = `slot ${slot.index} (${path.basename(want.file)})`;
  if (slot.tag === '') {
    problems.push(problem('slot-tag-empty', fsmeta, `${name}: empty tag, expected ${want.tag}`));
  } else if (slot.tag !== want.tag && !/^0+$/.test(want.tag)) {
    const other = all.findIndex((b) => b.tag === slot.tag);
    const hint = other >= 0 ? `, which is layer ${other + 1}'s (${path.basename(all[other].file)}): layers given in the wrong order?` : ': not this layer';
    problems.push(problem('slot-tag-mismatch', fsmeta, `${name}: tag ${JSON.stringify(slot.tag)}${hint} (expected ${want.tag})`));
  }
  if (slot.blocks !== want.blocks) {
    problems.push(problem('slot-blocks', fsmeta, `${name}: blocks ${slot.blocks}, expected ${want.blocks}`));
  }
  if (slot.uniaddr !== want.uniaddr) {
    problems.push(problem('slot-uniaddr', fsmeta, `${name}: uniaddr ${slot.uniaddr}, expected ${want.uniaddr}`));
  }
}

/**
 * Checks an fsmeta's device table against the layer blobs (bottom first, the
 * device= order) laid out as whole files at offset 0. Returns every problem, each
 * with a code and a one-line message naming the file.
 */
export function validateFlatLayout(fsmetaIn: ImageInput | string, blobsIn: (ImageInput | string)[]): FlatLayoutReport {
  const problems: LayoutProblem[] = [];
  const fsmeta = toInput(fsmetaIn);
  if (isProblem(fsmeta)) return { problems: [fsmeta], repairable: false, slots: [] };
  const h = checkImageHeader(fsmeta);
  problems.push(...h.problems);
  const report: FlatLayoutReport = { problems, repairable: false, slots: h.slots, superblock: h.sb };
  let blocked = h.fatal || !h.sb;
  const sb = h.sb;
  if (sb && !h.fatal) {
    if (!sb.hasDeviceTable) {
      problems.push(problem('no-device-table', fsmeta.file, 'no device table (DEVICE_TABLE not set or extra_devices 0): not an fsmeta'));
      blocked = true;
    } else if (sb.extraDevices !== blobsIn.length) {
      problems.push(problem('device-count-mismatch', fsmeta.file, `device table has ${sb.extraDevices} slots, but ${blobsIn.length} layer files were given`));
      blocked = true;
    }
    if (sb.blocks === 0) {
      problems.push(problem('empty-image', fsmeta.file, 'superblock declares 0 blocks'));
      blocked = true;
    }
  }
  const fbs = sb?.blockSize ?? 0;
  const shapes: (BlobShape | undefined)[] = [];
  const inputs: ImageInput[] = [];
  for (const blobIn of blobsIn) {
    const image = toInput(blobIn);
    if (isProblem(image)) {
      problems.push(image);
      shapes.push(undefined);
      continue;
    }
    inputs.push(image);
    const bh = checkImageHeader(image);
    problems.push(...bh.problems);
    if (bh.fatal || !bh.sb) {
      shapes.push(undefined);
      continue;
    }
    const shape = blobShape(bh, image, problems);
    shapes.push(shape);
    if (!shape) continue;
    checkRegion(image, shape, problems);
    if (fbs && bh.sb.blockSize < fbs) {
      problems.push(problem('layer-block-size-smaller', image.file, `block size ${bh.sb.blockSize} is smaller than the fsmeta's ${fbs}: mkfs truncated its chunk addresses, no slot repair can fix that`));
      shapes[shapes.length - 1] = undefined;
    } else if (fbs && (shape.regionBytes % fbs || shape.dataOffset % fbs || shape.deviceBytes % fbs)) {
      problems.push(problem('layer-misaligned', image.file, `device data is not aligned to the fsmeta block size ${fbs}`));
      shapes[shapes.length - 1] = undefined;
    }
  }
  if (blocked || !sb || shapes.some((s) => s === undefined)) return finish(report);
  const blobs: BlobLayout[] = [];
  let start = sb.blocks;
  shapes.forEach((shape, i) => {
    const s = shape as BlobShape;
    // A tar-index layer can be addressed two ways. mkfs.erofs makes the slot's
    // device the appended tar (chunk addresses count from the tar, blocks = tar
    // data only). Our native merge makes it the whole layer file (chunk
    // addresses count from the file start, blocks = index + tar data). The
    // slot's block count tells them apart without reading chunk indexes: the
    // tar-only count can never equal the whole region, because the index in
    // front of the tar is never empty.
    const wholeFile = s.kind === 'tar-index' && h.slots[i]?.blocks === s.regionBytes / fbs;
    const dataOffset = wholeFile ? 0 : s.dataOffset;
    blobs.push({
      file: inputs[i].file,
      kind: s.kind,
      blockSize: s.blockSize,
      regionBytes: s.regionBytes,
      dataOffset,
      start,
      tag: s.tag,
      blocks: wholeFile ? s.regionBytes / fbs : s.deviceBytes / fbs,
      uniaddr: start + dataOffset / fbs,
    });
    start += s.regionBytes / fbs;
  });
  if (start > 0xffffffff) {
    problems.push(problem('layout-too-large', fsmeta.file, `the flat disk would be ${start} blocks, more than 32-bit block addresses allow`));
    return finish(report);
  }
  blobs.forEach((b, i) => compareSlot(h.slots[i], b, fsmeta.file, blobs, problems));
  report.layout = { blockSize: fbs, primaryBlocks: sb.blocks, blobs, totalBlocks: start };
  return finish(report);
}

function finish(report: FlatLayoutReport): FlatLayoutReport {
  report.repairable = report.layout !== undefined && report.problems.length > 0 && report.problems.every((p) => REPAIRABLE_CODES.has(p.code));
  return report;
}

/** The device table as the fsmeta declares it, in the lint's terms (for `inspect`). */
export function declaredDeviceLayout(report: FlatLayoutReport): DeviceLayout | undefined {
  if (!report.layout || !report.superblock) return undefined;
  const layout = report.layout;
  return {
    blockSize: layout.blockSize,
    primaryBlocks: layout.primaryBlocks,
    devices: report.slots.map((slot, i) => ({
      uniaddr: slot.uniaddr,
      blocks: slot.blocks,
      dataOffset: layout.blobs[i].dataOffset,
      dataBytes: layout.blobs[i].regionBytes - layout.blobs[i].dataOffset,
    })),
  };
}

/** fsmeta bytes with every slot set to the layout and the checksum recomputed. */
export function repairedFsmetaBytes(fsmeta: Uint8Array, report: FlatLayoutReport): Uint8Array {
  const sb = report.superblock;
  if (!report.layout || !sb) throw new FlatLayoutError(report.problems);
  const out = Uint8Array.from(fsmeta);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  report.layout.blobs.forEach((b, i) => {
    const at = report.slots[i].offset;
    if (report.slots[i].tag === '') {
      out.fill(0, at, at + 64);
      out.set(Buffer.from(b.tag, 'latin1').subarray(0, 63), at);
    }
    v.setUint32(at + 64, b.blocks, true);
    v.setUint32(at + 68, b.uniaddr, true);
    // hi halves (48BIT only, which we refuse): keep them zero
    v.setUint16(at + 72, 0, true);
    v.setUint16(at + 74, 0, true);
  });
  if ((sb.featureCompat & FEATURE_COMPAT.SB_CHKSUM) !== 0) writeSuperblockChecksum(out, sb.blockSize);
  return out;
}

export interface RepairResult {
  /** <outDir>/<sha256 of the bytes>.erofs */
  path: string;
  bytes: Uint8Array;
  /** false when an identical copy was already there (idempotent). */
  written: boolean;
}

/**
 * Writes a corrected COPY of the fsmeta into `outDir` (content-addressed, crash
 * safe, idempotent) when only slot uniaddr/blocks/empty tags are wrong; refuses
 * with FlatLayoutError otherwise. The input file is never modified. The copy is
 * validated again before it is written.
 */
export function repairFlatLayout(fsmetaIn: ImageInput | string, blobsIn: (ImageInput | string)[], outDir: string): RepairResult {
  const full = typeof fsmetaIn === 'string' ? readImage(fsmetaIn) : fsmetaIn.head.length === fsmetaIn.size ? fsmetaIn : readImage(fsmetaIn.file);
  const report = validateFlatLayout(full, blobsIn);
  if (report.problems.length > 0 && !report.repairable) throw new FlatLayoutError(report.problems);
  const bytes = report.problems.length === 0 ? full.head : repairedFsmetaBytes(full.head, report);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const target = path.join(outDir, `${digest}.erofs`);
  const recheck = validateFlatLayout({ file: target, size: bytes.length, head: bytes }, blobsIn);
  if (recheck.problems.length > 0) {
    throw new FlatLayoutError([{ code: 'repair-failed', message: `${full.file}: the repaired copy still has problems: ${recheck.problems[0].message}`, file: full.file }]);
  }
  fs.mkdirSync(outDir, { recursive: true });
  if (sameFile(target, bytes)) return { path: target, bytes, written: false };
  writeFileAtomic(target, bytes, 0o644);
  return { path: target, bytes, written: true };
}

/** True when `file` exists and holds exactly `bytes` (content-addressed files are trusted only after this). */
export function sameFile(file: string, bytes: Uint8Array): boolean {
  try {
    const have = fs.readFileSync(file);
    return Buffer.compare(have, bytes) === 0;
  } catch {
    return false;
  }
}

// ---- the high-level entry point ------------------------------------------

export interface FlatDiskInput {
  /** fsmeta path; absent => exactly one layer, used alone. */
  fsmeta?: string;
  /** Layer blob paths, bottom first (device= order). */
  layers: string[];
}

export interface FlatDisk {
  /** Absolute, symlink-resolved paths, slot order (fsmeta first), offset 0. */
  extents: Extent[];
  /** The fsmeta actually used: the original, or the repaired copy. */
  fsmetaPath?: string;
  repaired: boolean;
  /** Everything found on the inputs (including what the repair fixed). */
  problems: LayoutProblem[];
  /** The computed layout (for linting the descriptor against it). */
  deviceLayout?: DeviceLayout;
}

/**
 * A resolved path as the text that goes into the descriptor. File names are
 * bytes; one that is not valid UTF-8 would be decoded with U+FFFD replacement
 * characters, and the descriptor would name a file that does not exist — or
 * another file that happens to carry the replaced name. Undefined then.
 */
function utf8Path(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

/**
 * The resolved path of `given` as descriptor text, checked against the
 * descriptor path rules; throws FlatLayoutError naming `given`.
 */
function descriptorPath(given: string, resolved: Buffer, role: string): string {
  const real = utf8Path(resolved);
  if (real === undefined) {
    throw new FlatLayoutError([{ code: 'path-not-utf8', message: `${role}: ${JSON.stringify(given)} resolves to a path that is not valid UTF-8: cannot be written into a VMDK descriptor`, file: given }]);
  }
  const bad = extentPathProblem(real);
  if (bad) {
    const via = real === given ? '' : ` (resolved from ${JSON.stringify(given)})`;
    throw new FlatLayoutError([{ code: bad.code, message: `${role}: ${bad.message}${via}: cannot be written into a VMDK descriptor`, file: given }]);
  }
  return real;
}

/** `given` could not be resolved or opened (`verb`): missing-file or unreadable-file. */
function accessError(given: string, role: string, verb: string, err: unknown): FlatLayoutError {
  const code = (err as NodeJS.ErrnoException).code;
  const what = code === 'ENOENT' ? 'no such file' : `cannot ${verb} (${code ?? String(err)})`;
  return new FlatLayoutError([{ code: code === 'ENOENT' ? 'missing-file' : 'unreadable-file', message: `${JSON.stringify(given)}: ${role}: ${what}`, file: given }]);
}

/**
 * realpath + descriptor path rules; throws FlatLayoutError naming `given`.
 * (Regular-file-ness is checked by readImageHead's fstat, saving a syscall per layer.)
 */
export function resolveImagePath(given: string, role: string): string {
  let resolved: Buffer;
  try {
    resolved = fs.realpathSync.native(given, { encoding: 'buffer' }); // one syscall, not an lstat per component
  } catch (err) {
    throw accessError(given, role, 'resolve', err);
  }
  return descriptorPath(given, resolved, role);
}

/**
 * Opens an input, learns its resolved path from the open descriptor
 * (/proc/self/fd: one syscall, and exactly the file we read), checks that path
 * against the descriptor rules and reads its header. Returns the input named by
 * its resolved path. Throws FlatLayoutError naming `given`.
 */
export function openResolvedImage(given: string, role: string): ImageInput {
  let fd: number;
  try {
    fd = fs.openSync(given, OPEN_INPUT_FLAGS); // never blocks on a FIFO (see OPEN_INPUT_FLAGS)
  } catch (err) {
    throw accessError(given, role, 'open', err);
  }
  try {
    let bytes: Buffer;
    try {
      bytes = fs.readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' });
    } catch {
      bytes = fs.realpathSync.native(given, { encoding: 'buffer' });
    }
    return readImageHeadFd(fd, descriptorPath(given, bytes, role));
  } catch (err) {
    if (err instanceof FlatLayoutError) throw err;
    if (err instanceof ErofsFormatError) throw new FlatLayoutError([{ code: err.code, message: `${role}: ${err.message}`, file: given }]);
    const e = err as NodeJS.ErrnoException;
    throw new FlatLayoutError([{ code: 'unreadable-file', message: `${JSON.stringify(given)}: ${role}: ${e.code ?? e.message}`, file: given }]);
  } finally {
    fs.closeSync(fd);
  }
}

/** The repaired copy's path goes into the descriptor: it must obey the same rules. */
function checkRepairDir(dir: string): void {
  const probe = contentAddressedPathProblem(dir);
  if (probe) {
    throw new FlatLayoutError([{ code: probe.code, message: `repair dir ${JSON.stringify(dir)}: ${probe.message}: cannot be written into a VMDK descriptor`, file: dir }]);
  }
}

/** Extent lines that fit in a descriptor of < 1100 lines (17 lines are fixed). */
export const MAX_EXTENTS = MAX_DESCRIPTOR_LINES - 17;

const toSectors = (bytes: number) => bytes / SECTOR_SIZE;

/**
 * Everything a caller needs to write the descriptor for fsmeta + layers: checks
 * paths, validates the layout, repairs a copy into `repairDir` when that is
 * enough, and returns the extents. Synchronous; throws FlatLayoutError (with
 * .code and a one-line .message naming the file) when refused. Writes nothing
 * unless a repair is needed, and then only `<repairDir>/<sha256>.erofs`.
 */
export function prepareFlatDisk(input: FlatDiskInput, options: { repairDir: string }): FlatDisk {
  if (input.fsmeta === undefined) {
    if (input.layers.length !== 1) {
      throw new FlatLayoutError([{ code: 'fsmeta-required', message: `${input.layers.length} layers given without an fsmeta: merge them first (or give exactly one layer)` }]);
    }
    const layer = openResolvedImage(input.layers[0], 'layer 1');
    const report = validateSingleImage(layer);
    if (report.problems.length > 0 || !report.layout) throw new FlatLayoutError(report.problems);
    const sectors = toSectors(report.layout.primaryBlocks * report.layout.blockSize);
    return { extents: [{ path: layer.file, sectors, offset: 0 }], repaired: false, problems: [] };
  }
  if (input.layers.length + 1 > MAX_EXTENTS) {
    throw new FlatLayoutError([{ code: 'too-many-layers', message: `${input.layers.length} layers: a descriptor holds at most ${MAX_EXTENTS} extents (fsmeta + ${MAX_EXTENTS - 1} layers)` }]);
  }
  const fsmetaInput = openResolvedImage(input.fsmeta, 'fsmeta');
  const blobInputs = input.layers.map((l, i) => openResolvedImage(l, `layer ${i + 1}`));
  const fsmeta = fsmetaInput.file;
  const layers = blobInputs.map((b) => b.file);
  const report = validateFlatLayout(fsmetaInput, blobInputs);
  if (report.problems.length > 0 && !report.repairable) throw new FlatLayoutError(report.problems);
  const layout = report.layout as FlatLayout;
  let fsmetaPath = fsmeta;
  let repaired = false;
  if (report.problems.length > 0) {
    checkRepairDir(path.resolve(options.repairDir));
    fs.mkdirSync(options.repairDir, { recursive: true });
    const dir = fs.realpathSync(options.repairDir);
    checkRepairDir(dir);
    fsmetaPath = repairFlatLayout(fsmetaInput, blobInputs, dir).path;
    repaired = true;
  }
  const perBlock = layout.blockSize / SECTOR_SIZE;
  const extents: Extent[] = [
    { path: fsmetaPath, sectors: layout.primaryBlocks * perBlock, offset: 0 },
    ...layout.blobs.map((b, i) => ({ path: layers[i], sectors: toSectors(b.regionBytes), offset: 0 })),
  ];
  const deviceLayout: DeviceLayout = {
    blockSize: layout.blockSize,
    primaryBlocks: layout.primaryBlocks,
    devices: layout.blobs.map((b) => ({ uniaddr: b.uniaddr, blocks: b.blocks, dataOffset: b.dataOffset, dataBytes: b.regionBytes - b.dataOffset })),
  };
  return { extents, fsmetaPath, repaired, problems: report.problems, deviceLayout };
}
