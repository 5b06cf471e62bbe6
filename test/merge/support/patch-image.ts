/**
 * Surgical corruption of real images for refusal tests: locate a structure
 * with our reader, change bytes, and (by default) recompute the superblock
 * checksum so the corruption reaches past the header checks.
 */
import * as fs from 'node:fs';
import { writeSuperblockChecksum } from '../../../src/erofs/checksum';
import {
  closeReaderImage,
  mapData,
  openReaderImage,
  readDirectory,
  readInode,
  type Inode,
  type ReaderImage,
} from '../../../src/erofs/reader';

export interface Located {
  image: ReaderImage;
  root: Inode;
  /** Absolute byte of the root directory's first dirent block. */
  rootDirBlock: number;
  /** Inode of a root entry by name. */
  child(name: string): Inode;
  /** Absolute byte of the 12-byte dirent of `name` in the root's first block. */
  direntOf(name: string): number;
}

/** Copies `src` to `dst`, lets `edit` change the bytes, fixes the checksum unless told not to. */
export function patchImage(src: string, dst: string, edit: (bytes: Buffer, at: Located) => void, fixChecksum = true): string {
  const image = openReaderImage(src);
  let bytes: Buffer;
  try {
    const root = readInode(image, image.sb.rootNid);
    const map = mapData(image, root);
    const rootDirBlock = map.kind === 'inline' && map.fullBlocks === 0 ? map.tailOffset : map.kind === 'extent' || map.kind === 'inline' ? map.block * image.blockSize : -1;
    if (rootDirBlock < 0) throw new Error(`${src}: root directory layout not handled by patchImage`);
    const entries = readDirectory(image, root);
    const located: Located = {
      image,
      root,
      rootDirBlock,
      child(name) {
        const e = entries.find((x) => x.name === name);
        if (!e) throw new Error(`${src}: no root entry ${name}`);
        return readInode(image, e.nid);
      },
      direntOf(name) {
        const i = entries.findIndex((x) => x.name === name);
        if (i < 0) throw new Error(`${src}: no root entry ${name}`);
        return rootDirBlock + 12 * i;
      },
    };
    bytes = fs.readFileSync(src);
    edit(bytes, located);
    if (fixChecksum) writeSuperblockChecksum(bytes, image.blockSize);
  } finally {
    closeReaderImage(image);
  }
  fs.writeFileSync(dst, bytes);
  return dst;
}
