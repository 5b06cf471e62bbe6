/**
 * Synthetic EROFS headers for tests and the benchmark: a plain 4 KiB-block layer
 * superblock and an fsmeta whose device table is correct for given layer sizes.
 * Only the header is real (no inodes): enough for the layout code, which never
 * reads past the superblock, the checksum window and the device table.
 */
import { writeSuperblockChecksum } from '../../src/erofs';

export const BS = 4096;

export function uuidFor(i: number): Uint8Array {
  const u = new Uint8Array(16);
  new DataView(u.buffer).setUint32(0, 0x1000 + i, true);
  u[15] = 0x42;
  return u;
}

export function tagFor(i: number): string {
  return Buffer.from(uuidFor(i)).toString('hex');
}

/** First 4 KiB of a plain layer of `blocks` blocks, checksummed. */
export function layerHead(i: number, blocks: number): Uint8Array {
  const b = new Uint8Array(BS);
  const v = new DataView(b.buffer);
  v.setUint32(1024, 0xe0f5e1e2, true);
  v.setUint32(1032, 0x3, true); // SB_CHKSUM | MTIME
  v.setUint8(1036, 12);
  v.setUint16(1038, 36, true); // root nid
  v.setUint32(1060, blocks, true);
  b.set(uuidFor(i), 1072);
  writeSuperblockChecksum(b, BS);
  return b;
}

/**
 * A whole fsmeta with a correct device table for layers of `sizes` blocks. Like
 * mkfs.erofs 1.9.3, tables that do not fit in block 0 go to byte 4096
 * (devt_slotoff 32), outside the checksum window.
 */
export function fsmetaBytes(sizes: number[]): Uint8Array {
  const n = sizes.length;
  const slotOff = 1152 + n * 128 <= BS ? 9 : 32;
  const tableEnd = slotOff * 128 + n * 128;
  const blocks = Math.ceil(Math.max(tableEnd, BS) / BS) + 1;
  const b = new Uint8Array(blocks * BS);
  const v = new DataView(b.buffer);
  v.setUint32(1024, 0xe0f5e1e2, true);
  v.setUint32(1032, 0x3, true);
  v.setUint8(1036, 12);
  v.setUint16(1038, 1, true); // root nid 1 (byte 32: clear of superblock and table)
  v.setUint32(1060, blocks, true);
  v.setUint32(1104, 0x8, true); // DEVICE_TABLE
  v.setUint16(1110, n, true);
  v.setUint16(1112, slotOff, true);
  let uniaddr = blocks;
  sizes.forEach((size, i) => {
    const at = slotOff * 128 + i * 128;
    b.set(Buffer.from(tagFor(i), 'latin1'), at);
    v.setUint32(at + 64, size, true);
    v.setUint32(at + 68, uniaddr, true);
    uniaddr += size;
  });
  writeSuperblockChecksum(b, BS);
  return b;
}
