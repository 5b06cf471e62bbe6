/**
 * CRC-32C (Castagnoli) the way EROFS uses it, and the superblock checksum rules.
 *
 * EROFS stores the *raw* CRC register: seed 0xFFFFFFFF and no final XOR
 * (= standard crc32c XOR 0xFFFFFFFF). The superblock checksum covers
 * [1024, 1024 + L) with L = blocksize - 1024 if blocksize > 1024, else blocksize,
 * with the 4-byte checksum field (at 1024 + 4) counted as zeros. A valid CRC does
 * not prove the device table is right: with 512-byte blocks, or with the table at
 * byte 4096 (>= 32 devices), the slots lie outside the window.
 */
import { ErofsFormatError } from './errors';

/**
 * Slicing-by-8 tables (8 x 256 entries, flat): T[k*256 + n] is the CRC of byte n
 * followed by k zero bytes. Eight bytes per step keeps validating 1000 layers
 * (3 KiB window each) within a few milliseconds.
 */
const TABLES = buildTables();

function buildTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const prev = t[(k - 1) * 256 + n];
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
}

/**
 * Raw CRC-32C register after feeding `bytes` into `crc` (default seed 0xFFFFFFFF).
 * No final XOR, exactly like the kernel's `crc32c(~0, ...)` used by EROFS.
 * For "123456789" this is 0x1CF96D7C (the standard, final-XORed value is 0xE3069283).
 */
export function crc32c(bytes: Uint8Array, crc = 0xffffffff): number {
  const t = TABLES;
  let c = crc >>> 0;
  let i = 0;
  const n = bytes.length;
  for (; i + 8 <= n; i += 8) {
    const lo = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + bytes[i + 4]] ^
      t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export const SUPERBLOCK_OFFSET = 1024;
/** Byte offset of the checksum field inside the image. */
export const CHECKSUM_FIELD_OFFSET = SUPERBLOCK_OFFSET + 4;

/** Length of the checksummed window that starts at byte 1024. */
export function checksumWindowLength(blockSize: number): number {
  return blockSize > 1024 ? blockSize - 1024 : blockSize;
}

/** First byte after the checksummed window. */
export function checksumWindowEnd(blockSize: number): number {
  return SUPERBLOCK_OFFSET + checksumWindowLength(blockSize);
}

/**
 * The checksum the superblock should carry, computed over the image's first bytes.
 * Throws ErofsFormatError('checksum-window-truncated') when the buffer ends inside
 * the window: a truncated image cannot be verified.
 */
export function computeSuperblockChecksum(image: Uint8Array, blockSize: number, file?: string): number {
  const end = checksumWindowEnd(blockSize);
  if (image.length < end) {
    throw new ErofsFormatError(
      'checksum-window-truncated',
      `${file ?? 'image'}: ${image.length} bytes, but the superblock checksum covers bytes 1024..${end} (block size ${blockSize})`,
      file,
    );
  }
  let crc = crc32c(image.subarray(SUPERBLOCK_OFFSET, CHECKSUM_FIELD_OFFSET));
  crc = crc32c(ZERO4, crc);
  return crc32c(image.subarray(CHECKSUM_FIELD_OFFSET + 4, end), crc);
}

const ZERO4 = new Uint8Array(4);

export interface ChecksumStatus {
  /** feature_compat has SB_CHKSUM: the kernel verifies the checksum at mount. */
  present: boolean;
  stored: number;
  computed: number;
  ok: boolean;
}

/** Reads the stored checksum and compares it with a fresh computation. */
export function verifySuperblockChecksum(image: Uint8Array, blockSize: number, file?: string): ChecksumStatus {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < CHECKSUM_FIELD_OFFSET + 8) {
    throw new ErofsFormatError('truncated-superblock', `${file ?? 'image'}: too short for an EROFS superblock`, file);
  }
  const stored = view.getUint32(CHECKSUM_FIELD_OFFSET, true);
  const present = (view.getUint32(SUPERBLOCK_OFFSET + 8, true) & 0x1) !== 0;
  const computed = computeSuperblockChecksum(image, blockSize, file);
  return { present, stored, computed, ok: !present || stored === computed };
}

/** Stores a freshly computed checksum into `image` in place (caller owns the buffer). */
export function writeSuperblockChecksum(image: Uint8Array, blockSize: number): number {
  const crc = computeSuperblockChecksum(image, blockSize);
  new DataView(image.buffer, image.byteOffset, image.byteLength).setUint32(CHECKSUM_FIELD_OFFSET, crc, true);
  return crc;
}
