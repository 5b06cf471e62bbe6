/**
 * EROFS superblock and device table parsing (design §6, erofs-format.md §2).
 *
 * Parsing is total: any byte string yields either a typed value or an
 * ErofsFormatError — never a RangeError, never a read past the buffer. Only what
 * makes the structure uninterpretable is refused here (short buffer, bad magic,
 * block size outside 9..12, device table outside the buffer); policy checks
 * (checksum, features, layout) live in flat-layout.ts.
 */
import { ErofsFormatError } from './errors';
import { SUPERBLOCK_OFFSET } from './checksum';

export { ErofsFormatError } from './errors';
export { crc32c } from './checksum';

export const EROFS_MAGIC = 0xe0f5e1e2;
/** Size of the base superblock; `sb_extslots` adds 16 bytes each. */
export const SUPERBLOCK_SIZE = 128;
export const DEVICE_SLOT_SIZE = 128;
export const MIN_BLOCK_SIZE_BITS = 9;
/** PAGE_SHIFT on x86-64: the kernel refuses larger blocks. */
export const MAX_BLOCK_SIZE_BITS = 12;

export const FEATURE_COMPAT = {
  SB_CHKSUM: 0x1,
  MTIME: 0x2,
  XATTR_FILTER: 0x4,
  SHARED_EA_IN_METABOX: 0x8,
  PLAIN_XATTR_PFX: 0x10,
  ISHARE_XATTRS: 0x20,
} as const;

export const FEATURE_INCOMPAT = {
  ZERO_PADDING: 0x1,
  COMPR_CFGS: 0x2,
  CHUNKED_FILE: 0x4,
  DEVICE_TABLE: 0x8,
  ZTAILPACKING: 0x10,
  FRAGMENTS: 0x20,
  XATTR_PREFIXES: 0x40,
  BLOCKS_48BIT: 0x80,
  METABOX: 0x100,
} as const;

/** Every incompat bit the 6.18 kernel knows. */
export const KNOWN_INCOMPAT_MASK = 0x1ff;

export interface Superblock {
  magic: number;
  checksum: number;
  featureCompat: number;
  blockSizeBits: number;
  blockSize: number;
  sbExtSlots: number;
  /** Raw u16 at +14: root nid, or blocks bits 32..47 with 48BIT and rootnid_8b != 0. */
  rootNid2b: number;
  /** Effective root nid (erofs-format.md §2.4). */
  rootNid: number;
  /** `inos`: inode count (statfs only). */
  inodes: bigint;
  /** `epoch` (older name build_time): base seconds of compact-inode mtimes. */
  epoch: bigint;
  fixedNsec: number;
  /** `blocks_lo` (+ blocks_hi with 48BIT): size of the primary device in blocks. */
  blocks: number;
  metaBlkAddr: number;
  xattrBlkAddr: number;
  /** Raw 16 bytes. */
  uuidBytes: Uint8Array;
  /** Canonical 8-4-4-4-12 lowercase form. */
  uuid: string;
  /** Label up to the first NUL. */
  volumeName: string;
  featureIncompat: number;
  /** u16 at +84: available_compr_algs or lz4_max_distance. */
  u1: number;
  extraDevices: number;
  devtSlotOff: number;
  dirBlkBits: number;
  xattrPrefixCount: number;
  xattrPrefixStart: number;
  packedNid: bigint;
  /** +108: seconds added to epoch for the mkfs time. */
  buildTime: number;
  rootNid8b: bigint;
  /** 128 + 16 * sbExtSlots. */
  sbSize: number;
  /** Device table present: incompat DEVICE_TABLE and extraDevices > 0. */
  hasDeviceTable: boolean;
}

export interface DeviceSlot {
  /** 0-based slot index; the slot describes device id index + 1. */
  index: number;
  /** NUL-padded tag up to the first NUL, decoded as latin1 (lossless for any bytes). */
  tag: string;
  blocks: number;
  uniaddr: number;
  /** Absolute byte offset of this slot in the image. */
  offset: number;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function where(file?: string): string {
  return file ?? 'image';
}

export function formatUuid(raw: Uint8Array): string {
  const hex = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function cString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  const used = nul < 0 ? bytes : bytes.subarray(0, nul);
  return Buffer.from(used.buffer, used.byteOffset, used.byteLength).toString('latin1');
}

/** Parses the superblock at byte 1024. `file` only names the input in error messages. */
/** The EROFS magic at byte 1024: how a file is recognised as an image before any other check. */
export function hasErofsMagic(bytes: Uint8Array): boolean {
  return bytes.length >= SUPERBLOCK_OFFSET + 4 && view(bytes).getUint32(SUPERBLOCK_OFFSET, true) === EROFS_MAGIC;
}

export function parseSuperblock(bytes: Uint8Array, file?: string): Superblock {
  if (bytes.length < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
    throw new ErofsFormatError(
      'truncated-superblock',
      `${where(file)}: ${bytes.length} bytes, too short for an EROFS superblock (needs ${SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE})`,
      file,
    );
  }
  const v = view(bytes);
  const at = SUPERBLOCK_OFFSET;
  const magic = v.getUint32(at, true);
  if (magic !== EROFS_MAGIC) {
    throw new ErofsFormatError(
      'bad-magic',
      `${where(file)}: not an EROFS image (magic 0x${magic.toString(16).padStart(8, '0')} at byte 1024, expected 0xe0f5e1e2)`,
      file,
    );
  }
  const blockSizeBits = v.getUint8(at + 12);
  if (blockSizeBits < MIN_BLOCK_SIZE_BITS || blockSizeBits > MAX_BLOCK_SIZE_BITS) {
    throw new ErofsFormatError(
      'bad-block-size',
      `${where(file)}: block size bits ${blockSizeBits} outside ${MIN_BLOCK_SIZE_BITS}..${MAX_BLOCK_SIZE_BITS}`,
      file,
    );
  }
  const featureIncompat = v.getUint32(at + 80, true);
  const is48 = (featureIncompat & FEATURE_INCOMPAT.BLOCKS_48BIT) !== 0;
  const rootNid2b = v.getUint16(at + 14, true);
  const rootNid8b = v.getBigUint64(at + 112, true);
  const use8b = is48 && rootNid8b !== 0n;
  if (use8b && rootNid8b > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ErofsFormatError('bad-root-nid', `${where(file)}: 64-bit root nid ${rootNid8b} is out of range`, file);
  }
  const blocksLo = v.getUint32(at + 36, true);
  const sbExtSlots = v.getUint8(at + 13);
  const extraDevices = v.getUint16(at + 86, true);
  const uuidBytes = bytes.slice(at + 48, at + 64);
  return {
    magic,
    checksum: v.getUint32(at + 4, true),
    featureCompat: v.getUint32(at + 8, true),
    blockSizeBits,
    blockSize: 1 << blockSizeBits,
    sbExtSlots,
    rootNid2b,
    rootNid: use8b ? Number(rootNid8b) : rootNid2b,
    inodes: v.getBigUint64(at + 16, true),
    epoch: v.getBigUint64(at + 24, true),
    fixedNsec: v.getUint32(at + 32, true),
    blocks: use8b ? blocksLo + rootNid2b * 2 ** 32 : blocksLo,
    metaBlkAddr: v.getUint32(at + 40, true),
    xattrBlkAddr: v.getUint32(at + 44, true),
    uuidBytes,
    uuid: formatUuid(uuidBytes),
    volumeName: cString(bytes.subarray(at + 64, at + 80)),
    featureIncompat,
    u1: v.getUint16(at + 84, true),
    extraDevices,
    devtSlotOff: v.getUint16(at + 88, true),
    dirBlkBits: v.getUint8(at + 90),
    xattrPrefixCount: v.getUint8(at + 91),
    xattrPrefixStart: v.getUint32(at + 92, true),
    packedNid: v.getBigUint64(at + 96, true),
    buildTime: v.getUint32(at + 108, true),
    rootNid8b,
    sbSize: SUPERBLOCK_SIZE + 16 * sbExtSlots,
    hasDeviceTable: (featureIncompat & FEATURE_INCOMPAT.DEVICE_TABLE) !== 0 && extraDevices > 0,
  };
}

/** Absolute byte range [start, end) of the device table; empty when there is none. */
export function deviceTableRange(sb: Superblock): { start: number; end: number } {
  if (!sb.hasDeviceTable) return { start: 0, end: 0 };
  const start = sb.devtSlotOff * DEVICE_SLOT_SIZE;
  return { start, end: start + sb.extraDevices * DEVICE_SLOT_SIZE };
}

/**
 * Parses the device table described by `sb`. Returns [] when the image has no
 * device table. Refuses a table that overlaps the superblock or runs past the
 * buffer: `bytes` must hold the image from byte 0 at least up to the table's end.
 */
export function parseDeviceTable(bytes: Uint8Array, sb: Superblock, file?: string): DeviceSlot[] {
  if (!sb.hasDeviceTable) return [];
  const { start, end } = deviceTableRange(sb);
  const sbEnd = SUPERBLOCK_OFFSET + sb.sbSize;
  if (start < sbEnd) {
    throw new ErofsFormatError(
      'bad-device-table-offset',
      `${where(file)}: device table at byte ${start} (devt_slotoff ${sb.devtSlotOff}) overlaps the superblock, which ends at ${sbEnd}`,
      file,
    );
  }
  if (end > bytes.length) {
    throw new ErofsFormatError(
      'truncated-device-table',
      `${where(file)}: device table of ${sb.extraDevices} slots needs bytes ${start}..${end}, but the image has ${bytes.length}`,
      file,
    );
  }
  const is48 = (sb.featureIncompat & FEATURE_INCOMPAT.BLOCKS_48BIT) !== 0;
  const v = view(bytes);
  const slots: DeviceSlot[] = [];
  for (let index = 0; index < sb.extraDevices; index++) {
    const offset = start + index * DEVICE_SLOT_SIZE;
    const blocksHi = is48 ? v.getUint16(offset + 72, true) : 0;
    const uniaddrHi = is48 ? v.getUint16(offset + 74, true) : 0;
    slots.push({
      index,
      tag: cString(bytes.subarray(offset, offset + 64)),
      blocks: v.getUint32(offset + 64, true) + blocksHi * 2 ** 32,
      uniaddr: v.getUint32(offset + 68, true) + uniaddrHi * 2 ** 32,
      offset,
    });
  }
  return slots;
}

/** Names of the set bits, for `inspect` and error messages. */
export function featureNames(bits: number, table: Record<string, number>): string[] {
  const names: string[] = [];
  let known = 0;
  for (const [name, bit] of Object.entries(table)) {
    known |= bit;
    if (bits & bit) names.push(name);
  }
  const unknown = (bits & ~known) >>> 0;
  if (unknown) names.push(`unknown(0x${unknown.toString(16)})`);
  return names;
}
