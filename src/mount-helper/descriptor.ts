/**
 * Strict parser of the VMDK flat descriptors erofs-vmdk writes
 * (src/vmdk/descriptor.ts renders them; design §5). It accepts the header and
 * DDB lines our renderer writes and extent lines of exactly the form
 * `RW <sectors> FLAT "<absolute path>" 0`, nothing else: the helper mounts
 * what the descriptor names, so anything unexpected is refused rather than
 * interpreted. Pure and dependency-free (src/vmdk pulls node:crypto and the
 * renderer; the helper needs neither).
 */
import { refuse, show } from './errors';

export interface FlatExtent {
  /** 1-based line number in the descriptor. */
  line: number;
  path: string;
  sectors: number;
}

/** Readers accept fewer lines than this (libkrun); so does our renderer. */
export const MAX_DESCRIPTOR_LINES = 1100;
/** 1100 lines of at most ~540 bytes each stay far below this. */
export const MAX_DESCRIPTOR_BYTES = 1 << 20;

const COMMENTS = new Set(['# Disk DescriptorFile', '# Extent description', '# The Disk Data Base', '#DDB']);
const HEADER: Record<string, RegExp> = {
  version: /^1$/,
  CID: /^[0-9a-f]{8}$/,
  parentCID: /^ffffffff$/,
  createType: /^"twoGbMaxExtentFlat"$/,
};
const EXTENT_RE = /^RW ([1-9][0-9]*) FLAT "([^"]+)" 0$/;
const DDB_RE = /^ddb\.(virtualHWVersion|geometry\.cylinders|geometry\.heads|geometry\.sectors|adapterType) = "([0-9A-Za-z]*)"$/;

/** Parses `text` (the content of `file`, named in messages) into its extents, in order. */
export function parseFlatDescriptor(text: string, file: string): FlatExtent[] {
  const where = (line: number) => `descriptor ${show(file)} line ${line}`;
  if (text.includes('\0')) refuse(`descriptor ${show(file)} is not a text file (NUL byte)`);
  if (text.includes('\r')) refuse(`descriptor ${show(file)} has CR line endings`);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length >= MAX_DESCRIPTOR_LINES) refuse(`descriptor ${show(file)} has ${lines.length} lines (at most ${MAX_DESCRIPTOR_LINES - 1})`);
  if (lines[0] !== '# Disk DescriptorFile') refuse(`descriptor ${show(file)} does not start with "# Disk DescriptorFile"`);

  const extents: FlatExtent[] = [];
  const seenHeader = new Set<string>();
  const seenDdb = new Set<string>();
  let section: 'header' | 'extents' | 'ddb' = 'header';
  lines.forEach((text, i) => {
    const line = i + 1;
    if (text === '') return;
    if (COMMENTS.has(text)) {
      if (text === '# Extent description') section = 'extents';
      if (text === '#DDB' || text === '# The Disk Data Base') section = 'ddb';
      return;
    }
    const extent = EXTENT_RE.exec(text);
    if (extent) {
      if (section !== 'extents') refuse(`${where(line)}: extent line outside the extent section`);
      const sectors = Number(extent[1]);
      if (!Number.isSafeInteger(sectors)) refuse(`${where(line)}: sector count ${extent[1]} is too large`);
      extents.push({ line, path: extent[2], sectors });
      return;
    }
    const ddb = DDB_RE.exec(text);
    if (ddb) {
      if (section !== 'ddb') refuse(`${where(line)}: DDB entry outside the DDB section`);
      if (seenDdb.has(ddb[1])) refuse(`${where(line)}: ddb.${ddb[1]} given twice`);
      seenDdb.add(ddb[1]);
      return;
    }
    const eq = text.indexOf('=');
    const key = eq > 0 ? text.slice(0, eq) : '';
    if (Object.hasOwn(HEADER, key)) {
      if (section !== 'header') refuse(`${where(line)}: header key ${key} outside the header`);
      if (seenHeader.has(key)) refuse(`${where(line)}: header key ${key} given twice`);
      if (!HEADER[key].test(text.slice(eq + 1))) refuse(`${where(line)}: unexpected ${key} value ${show(text.slice(eq + 1))}`);
      seenHeader.add(key);
      return;
    }
    // Everything else: RDONLY/NOACCESS/ZERO extents, non-zero offsets, relative paths
    // without quotes, unknown keys, stray text.
    refuse(`${where(line)}: not an extent line of the form RW <sectors> FLAT "<path>" 0 nor a known header/DDB line: ${show(text.slice(0, 80))}`);
  });
  for (const key of ['version', 'createType']) {
    if (!seenHeader.has(key)) refuse(`descriptor ${show(file)} has no ${key}= line`);
  }
  if (extents.length === 0) refuse(`descriptor ${show(file)} has no extent`);
  return extents;
}
