/**
 * The mount source: the descriptor file and the images it names. Everything is
 * checked before the first loop device is made: trust roots, file types,
 * lengths, the EROFS magic of every extent and the fsmeta's device count.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { refuse, show } from './errors';
import { MAX_DESCRIPTOR_BYTES, parseFlatDescriptor } from './descriptor';
import { resolveTrusted, type TrustRoots } from './trust-roots';

export const EROFS_MAGIC = 0xe0f5e1e2;
/** The EROFS superblock starts at byte 1024 of the image. */
export const SUPERBLOCK_OFFSET = 1024;
/** `extra_devices` (u16, little endian) inside the superblock. */
export const EXTRA_DEVICES_OFFSET = 86;

export interface SourceImages {
  /** realpath of the descriptor. */
  descriptor: string;
  /** One extent: that EROFS image alone. Several: the fsmeta (first extent). */
  primary: string;
  /** Layer blobs, bottom first (device=1..n); empty for a one-extent descriptor. */
  blobs: string[];
}

function openRegular(real: string, what: string, given: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    return refuse(`${what} ${show(given)} cannot be opened (${(err as NodeJS.ErrnoException).code})`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    refuse(`${what} ${show(given)} is not a regular file`);
  }
  return { fd, size: st.size };
}

/** Reads and checks the descriptor at `source`; returns the images to mount. */
export function readSource(source: string, roots: TrustRoots): SourceImages {
  const descriptor = resolveTrusted(source, 'source', roots);
  if (!path.basename(descriptor).endsWith('.vmdk')) refuse(`source ${show(source)} is not a *.vmdk file`);
  const { fd, size } = openRegular(descriptor, 'source', source);
  let text: string;
  try {
    if (size > MAX_DESCRIPTOR_BYTES) refuse(`source ${show(source)} is ${size} bytes, too large for a descriptor`);
    const buf = Buffer.alloc(size);
    const n = fs.readSync(fd, buf, 0, size, 0);
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
  const extents = parseFlatDescriptor(text, source);
  const reals = extents.map((e, i) => {
    const what = `extent ${i + 1} (descriptor line ${e.line})`;
    const real = resolveTrusted(e.path, what, roots);
    const image = openRegular(real, what, e.path);
    try {
      const need = e.sectors * 512;
      if (image.size < need) refuse(`${what} ${show(e.path)} is ${image.size} bytes, shorter than its extent (${e.sectors} sectors = ${need} bytes)`);
      const sb = Buffer.alloc(EXTRA_DEVICES_OFFSET + 2);
      const n = fs.readSync(image.fd, sb, 0, sb.length, SUPERBLOCK_OFFSET);
      if (n < sb.length || sb.readUInt32LE(0) !== EROFS_MAGIC) refuse(`${what} ${show(e.path)} is not an EROFS image (no magic at byte ${SUPERBLOCK_OFFSET})`);
      if (i === 0) {
        const devices = sb.readUInt16LE(EXTRA_DEVICES_OFFSET);
        if (devices !== extents.length - 1) {
          refuse(
            `extent 1 ${show(e.path)} declares ${devices} extra devices but descriptor ${show(source)} has ${extents.length - 1} more extents`,
          );
        }
      }
    } finally {
      fs.closeSync(image.fd);
    }
    return real;
  });
  return { descriptor, primary: reals[0], blobs: reals.slice(1) };
}
