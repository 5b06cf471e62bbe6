/**
 * Consumer-side check of a VMDK flat descriptor before it is handed to a
 * hypervisor (design §5). Deliberately independent of the producer in
 * src/vmdk: a reference consumer must not trust the code that wrote the file.
 *
 * Everything QEMU would silently misread is refused: lines it drops
 * (RDONLY/NOACCESS/ZERO, short lines) shift every later extent; relative or
 * symlinked paths can be swapped under us; an extent shorter than its file's
 * claimed length reads zeros. Each extent file is re-checked here (exists,
 * regular file, long enough, inside an allowed folder) because the mount list
 * may be older than the files it names.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FlatExtent {
  /** Absolute, symlink-free path of the extent file. */
  path: string;
  sectors: number;
  /** Offset into the file, in sectors. */
  offsetSectors: number;
}

export interface FlatDescriptor {
  path: string;
  cid: string;
  extents: FlatExtent[];
  totalSectors: number;
}

const EROFS_MAGIC = 0xe0f5e1e2;
const MAX_DESCRIPTOR_BYTES = 1 << 20;
const EXTENT_LINE = /^RW ([1-9][0-9]*) FLAT "([^"]*)" (0|[1-9][0-9]*)$/;

export class DescriptorError extends Error {
  constructor(descriptor: string, message: string) {
    super(`descriptor ${descriptor}: ${message}`);
    this.name = 'DescriptorError';
  }
}

/** True when `p` is `dir` itself or below it (both absolute and resolved). */
export function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Absolute path without symlinks in any component, or an error naming what is wrong. */
export function requireCanonical(p: string, what: string, allowedDirs: string[]): string {
  if (!path.isAbsolute(p)) throw new Error(`${what} ${JSON.stringify(p)} is not an absolute path`);
  if (/[\s"]/.test(p)) throw new Error(`${what} ${JSON.stringify(p)} contains whitespace or a quote`);
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    throw new Error(`${what} ${p} does not exist`);
  }
  if (real !== path.normalize(p)) throw new Error(`${what} ${p} goes through a symlink (resolves to ${real})`);
  if (!allowedDirs.some((dir) => isInside(real, dir))) {
    throw new Error(`${what} ${p} is outside the allowed folders (${allowedDirs.join(', ')})`);
  }
  const st = fs.statSync(real);
  if (!st.isFile()) throw new Error(`${what} ${p} is not a regular file`);
  return real;
}

/**
 * Parses and checks a flat descriptor. `allowedDirs` must be canonical
 * (realpath) folders; the descriptor and every extent must lie inside one.
 */
export function checkFlatDescriptor(descriptorPath: string, allowedDirs: string[]): FlatDescriptor {
  const fail = (message: string): never => {
    throw new DescriptorError(descriptorPath, message);
  };
  let real: string;
  try {
    real = requireCanonical(descriptorPath, 'descriptor', allowedDirs);
  } catch (err) {
    return fail((err as Error).message);
  }
  const size = fs.statSync(real).size;
  if (size > MAX_DESCRIPTOR_BYTES) fail(`is ${size} bytes; a flat descriptor is a small text file`);
  const text = fs.readFileSync(real, 'latin1');
  if (text.includes('\r')) fail('has CR line endings');
  const lines = text.split('\n');
  if (lines[0] !== '# Disk DescriptorFile') fail('does not start with "# Disk DescriptorFile"');

  const header = new Map<string, string>();
  const extents: FlatExtent[] = [];
  let inDdb = false;
  lines.forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line === '' || line.startsWith('#')) {
      if (line === '#DDB' || line === '# The Disk Data Base') inDdb = true;
      return;
    }
    if (inDdb) {
      if (!/^ddb\.[A-Za-z0-9.]+ = "[^"]*"$/.test(line)) fail(`${where}: malformed ddb entry ${JSON.stringify(line)}`);
      return;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv && extents.length === 0) {
      if (header.has(kv[1])) fail(`${where}: duplicate header key ${kv[1]}`);
      header.set(kv[1], kv[2]);
      return;
    }
    const m = EXTENT_LINE.exec(line);
    if (!m) {
      // Anything else is a line QEMU may drop (RDONLY, ZERO, NOACCESS, short
      // lines): every later extent would shift, so refuse.
      fail(`${where}: not an "RW <sectors> FLAT \\"<path>\\" <offset>" extent: ${JSON.stringify(line)}`);
    }
    extents.push({ path: m![2], sectors: Number(m![1]), offsetSectors: Number(m![3]) });
  });

  const expectHeader: Record<string, RegExp> = {
    version: /^1$/,
    CID: /^[0-9a-f]{8}$/,
    parentCID: /^ffffffff$/,
    createType: /^"twoGbMaxExtentFlat"$/,
  };
  for (const [key, value] of header) {
    if (!(key in expectHeader)) fail(`unexpected header key ${key}`);
    if (!expectHeader[key].test(value)) fail(`header ${key}=${value} is not accepted`);
  }
  for (const key of Object.keys(expectHeader)) if (!header.has(key)) fail(`header key ${key} is missing`);
  const cid = header.get('CID')!;
  if (cid === 'ffffffff' || cid === 'fffffffe') fail(`CID ${cid} is reserved`);
  if (extents.length === 0) fail('has no extents');

  let totalSectors = 0;
  for (const [i, extent] of extents.entries()) {
    let file: string;
    try {
      file = requireCanonical(extent.path, `extent ${i}`, allowedDirs);
    } catch (err) {
      return fail((err as Error).message);
    }
    const need = (extent.offsetSectors + extent.sectors) * 512;
    const have = fs.statSync(file).size;
    if (have < need) fail(`extent ${i} ${file} is ${have} bytes, shorter than the ${need} bytes the descriptor maps`);
    if (!Number.isSafeInteger(need)) fail(`extent ${i} is too large`);
    totalSectors += extent.sectors;
  }
  checkErofsMagic(extents[0], fail);
  return { path: real, cid, extents, totalSectors };
}

/** The disk must start with an EROFS superblock (fsmeta, or the only layer). */
function checkErofsMagic(first: FlatExtent, fail: (m: string) => never): void {
  if (first.sectors * 512 < 1028) fail(`first extent ${first.path} is too short to hold an EROFS superblock`);
  const fd = fs.openSync(first.path, 'r');
  try {
    const buf = Buffer.alloc(4);
    fs.readSync(fd, buf, 0, 4, first.offsetSectors * 512 + 1024);
    const magic = buf.readUInt32LE(0);
    if (magic !== EROFS_MAGIC) fail(`first extent ${first.path} has no EROFS superblock (magic 0x${magic.toString(16)})`);
  } finally {
    fs.closeSync(fd);
  }
}
