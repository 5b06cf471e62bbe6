/**
 * Directories (erofs-format.md §5): blocks of 12-byte dirents followed by their
 * names, globally sorted by unsigned byte order.
 *
 * The reader is stricter than the kernel's readdir on purpose: an entry that the
 * kernel would list but could not look up (unsorted names, duplicates), a name
 * with '/' or NUL, or a file type that disagrees with the inode would make the
 * overlay view of the layer ill-defined, so such a directory is refused rather
 * than merged into something that differs from what the kernel shows.
 */
import { ErofsFormatError } from '../errors';
import { mapData, readDataBlock } from './data';
import type { Inode } from './inode';
import type { ReaderImage } from './image';

export const DIRENT_SIZE = 12;
export const MAX_NAME_LEN = 255;

export interface DirEntry {
  /** Raw name bytes as a latin1 string (one char per byte, so order and identity are byte-exact). */
  name: string;
  nid: number;
  fileType: number;
}

function fail(image: ReaderImage, dir: Inode, code: string, what: string): never {
  throw new ErofsFormatError(code, `${image.path}: directory nid ${dir.nid}: ${what}`, image.path);
}

/** All entries of directory `dir`, including "." and ".." when present, in on-disk (sorted) order. */
export function readDirectory(image: ReaderImage, dir: Inode): DirEntry[] {
  const map = mapData(image, dir);
  const bs = image.blockSize;
  const nblocks = Math.ceil(dir.size / bs);
  const out: DirEntry[] = [];
  let previous: string | null = null;
  for (let b = 0; b < nblocks; b++) {
    const block = readDataBlock(image, dir, map, b);
    const valid = block.length;
    if (valid < DIRENT_SIZE) fail(image, dir, 'bad-dirent', `block ${b} holds ${valid} bytes, less than one dirent`);
    const nameoff0 = block.readUInt16LE(8);
    if (nameoff0 < DIRENT_SIZE || nameoff0 >= bs || nameoff0 % DIRENT_SIZE !== 0 || nameoff0 > valid) {
      fail(image, dir, 'bad-dirent', `block ${b}: invalid first name offset ${nameoff0}`);
    }
    const count = nameoff0 / DIRENT_SIZE;
    for (let i = 0; i < count; i++) {
      const at = i * DIRENT_SIZE;
      const nameoff = block.readUInt16LE(at + 8);
      let end: number;
      if (i + 1 < count) {
        end = block.readUInt16LE(at + DIRENT_SIZE + 8);
      } else {
        const nul = block.indexOf(0, nameoff);
        end = nul < 0 || nul > valid ? valid : nul;
      }
      if (nameoff < nameoff0 || end > valid || end <= nameoff || end - nameoff > MAX_NAME_LEN) {
        fail(image, dir, 'bad-dirent', `block ${b} entry ${i}: bogus name range ${nameoff}..${end}`);
      }
      const name = block.toString('latin1', nameoff, end);
      if (name.includes('/') || name.includes('\0')) fail(image, dir, 'bad-dirent', `block ${b} entry ${i}: name contains '/' or NUL`);
      if (previous !== null && !(previous < name)) {
        fail(image, dir, 'unsorted-directory', `entries are not in strictly ascending byte order (${JSON.stringify(previous)} then ${JSON.stringify(name)})`);
      }
      previous = name;
      const nidLo = block.readUInt32LE(at);
      const nidHi = block.readUInt32LE(at + 4);
      if (nidHi >= 1 << 21) fail(image, dir, 'bad-nid', `entry ${JSON.stringify(name)} has nid beyond 2^53`);
      out.push({ name, nid: nidHi * 2 ** 32 + nidLo, fileType: block[at + 10] });
    }
  }
  return out;
}
