/**
 * One EROFS image as the layout code sees it: its size and its first bytes, and
 * the header checks every image (fsmeta or layer) must pass.
 */
import * as fs from 'node:fs';
import { ErofsFormatError } from './errors';
import { SUPERBLOCK_OFFSET, checksumWindowEnd, computeSuperblockChecksum } from './checksum';
import {
  FEATURE_COMPAT,
  FEATURE_INCOMPAT,
  KNOWN_INCOMPAT_MASK,
  deviceTableRange,
  parseDeviceTable,
  parseSuperblock,
  type DeviceSlot,
  type Superblock,
} from './superblock';

export interface ImageInput {
  /** Names the image in messages; a path when it came from disk. */
  file: string;
  /** Size of the whole file in bytes. */
  size: number;
  /**
   * The file's first bytes: at least the superblock, the checksum window and the
   * device table when the file is that long (readImageHead reads exactly that).
   */
  head: Uint8Array;
}

/** One finding: stable `code`, one-line `message` naming the file. */
export interface LayoutProblem {
  code: string;
  message: string;
  file?: string;
}

/** Enough for the superblock and a 4 KiB checksum window; more is read on demand. */
const FIRST_READ = 4096;
/** Hard cap on header bytes we read (65535 slots * 128 + slack). */
const MAX_HEAD = 9 << 20;

function readAt(fd: number, length: number): Uint8Array {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * Reads what the header checks need from an open file: the first 4 KiB, then up
 * to the end of the device table if it lies further. Never reads more than the
 * file has. Refuses anything but a regular file.
 */
export function readImageHeadFd(fd: number, file: string): ImageInput {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new ErofsFormatError('not-a-file', `${JSON.stringify(file)}: not a regular file`, file);
  const size = st.size;
  let head = readAt(fd, Math.min(size, FIRST_READ));
  try {
    const sb = parseSuperblock(head, file);
    const need = Math.min(size, MAX_HEAD, Math.max(deviceTableRange(sb).end, checksumWindowEnd(sb.blockSize)));
    if (need > head.length) head = readAt(fd, need);
  } catch (err) {
    if (!(err instanceof ErofsFormatError)) throw err;
    // the header checks report it
  }
  return { file, size, head };
}

/**
 * Flags for opening an input that should be a regular file. O_NONBLOCK: open(2)
 * of a FIFO for reading otherwise blocks until a writer appears, which would
 * hang the CLI and freeze the daemon's event loop (these opens are synchronous);
 * with it the open returns at once and the fstat check refuses the FIFO. It
 * changes nothing for regular files.
 */
export const OPEN_INPUT_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

export function readImageHead(file: string): ImageInput {
  const fd = fs.openSync(file, OPEN_INPUT_FLAGS);
  try {
    return readImageHeadFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whole file, for images we copy (fsmeta repair). */
export function readImage(file: string): ImageInput {
  const head = fs.readFileSync(file);
  return { file, size: head.length, head };
}

export interface ImageHeader {
  sb?: Superblock;
  slots: DeviceSlot[];
  /** Problems of the image on its own. */
  problems: LayoutProblem[];
  /** A problem prevents using sb/slots at all (unparseable). */
  fatal: boolean;
}

/** One finding about one file; the message starts with the file so it reads alone on a line. */
export function problem(code: string, file: string, message: string): LayoutProblem {
  return { code, message: `${file}: ${message}`, file };
}

/**
 * Header checks shared by fsmeta and layers: superblock parses, checksum (when
 * the image declares one), dirblkbits, features we refuse, device table inside
 * the file, primary device inside the file.
 */
export function checkImageHeader(image: ImageInput): ImageHeader {
  const { file } = image;
  const out: ImageHeader = { slots: [], problems: [], fatal: false };
  let sb: Superblock;
  try {
    sb = parseSuperblock(image.head, file);
  } catch (err) {
    if (!(err instanceof ErofsFormatError)) throw err;
    out.problems.push({ code: err.code, message: err.message, file });
    out.fatal = true;
    return out;
  }
  out.sb = sb;
  const p = out.problems;
  if ((sb.featureCompat & FEATURE_COMPAT.SB_CHKSUM) !== 0) {
    const end = checksumWindowEnd(sb.blockSize);
    if (image.head.length < end) {
      p.push(problem('checksum-window-truncated', file, `${image.size} bytes, but the superblock checksum covers bytes ${SUPERBLOCK_OFFSET}..${end}: cannot verify it`));
    } else {
      const computed = computeSuperblockChecksum(image.head, sb.blockSize);
      if (computed !== sb.checksum) {
        p.push(problem('bad-checksum', file, `superblock checksum 0x${hex(sb.checksum)} does not match the content (0x${hex(computed)})`));
      }
    }
  }
  if (sb.dirBlkBits !== 0) p.push(problem('bad-dirblkbits', file, `dirblkbits ${sb.dirBlkBits}, must be 0`));
  const refused = sb.featureIncompat & (FEATURE_INCOMPAT.BLOCKS_48BIT | FEATURE_INCOMPAT.METABOX);
  if (refused) {
    const names = [refused & FEATURE_INCOMPAT.BLOCKS_48BIT ? '48BIT' : '', refused & FEATURE_INCOMPAT.METABOX ? 'METABOX' : ''].filter(Boolean);
    p.push(problem('unsupported-feature', file, `incompat feature ${names.join('+')} (0x${hex(sb.featureIncompat)}) is not supported`));
  }
  const unknown = (sb.featureIncompat & ~KNOWN_INCOMPAT_MASK) >>> 0;
  if (unknown) p.push(problem('unknown-feature', file, `unknown incompat feature bits 0x${hex(unknown)}`));
  if (sb.blocks * sb.blockSize > image.size) {
    p.push(problem('file-short', file, `${image.size} bytes, but the superblock says ${sb.blocks} blocks of ${sb.blockSize} (${sb.blocks * sb.blockSize} bytes)`));
  }
  try {
    out.slots = parseDeviceTable(image.head, sb, file);
  } catch (err) {
    if (!(err instanceof ErofsFormatError)) throw err;
    p.push({ code: err.code, message: err.message, file });
    out.fatal = true;
    return out;
  }
  if (sb.hasDeviceTable) {
    // A table that overlaps the root inode is inode bytes read as slots (extra-devices-5).
    const { start, end } = deviceTableRange(sb);
    const root = sb.metaBlkAddr * sb.blockSize + sb.rootNid * 32;
    if (root < end && root + 32 > start) {
      p.push(problem('device-table-overlaps-metadata', file, `device table bytes ${start}..${end} overlap the root inode at byte ${root}`));
    }
  }
  return out;
}

export function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
