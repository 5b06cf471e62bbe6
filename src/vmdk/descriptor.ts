/**
 * Rendering and parsing of VMDK flat descriptors (design §5).
 *
 * The rendered text is byte-for-byte what every known reader accepts: only RW
 * FLAT extents with explicit decimal offsets, LF line endings, single spaces,
 * header keys version/CID/parentCID/createType only, fewer than 1100 lines.
 */
import { createHash } from 'node:crypto';
import { VmdkError } from './errors';
import { extentPathProblem } from './paths';

/** One extent line: `RW <sectors> FLAT "<path>" <offset>`. Sizes in 512-byte sectors. */
export interface Extent {
  path: string;
  sectors: number;
  /** Offset into the file, in sectors. 0 by default (libkrun reads it as bytes). */
  offset: number;
}

export interface RenderOptions {
  /** Split each file into VMware-style pieces of at most 4194304 sectors (2 GiB). */
  split2g?: boolean;
}

export const SECTOR_SIZE = 512;
export const SPLIT_SECTORS = 4194304;
/** libkrun and others refuse longer descriptors; we stay strictly below. */
export const MAX_DESCRIPTOR_LINES = 1100;
export const HEADER_KEYS = ['version', 'CID', 'parentCID', 'createType'] as const;
export const CREATE_TYPE = 'twoGbMaxExtentFlat';
/** CIDs with a special meaning for QEMU/VMware ("no parent" / "invalid"). */
export const RESERVED_CIDS = new Set(['ffffffff', 'fffffffe']);

function checkExtent(e: Extent, index: number): void {
  const problem = extentPathProblem(e.path);
  if (problem) throw new VmdkError(problem.code, `extent ${index}: ${problem.message}`);
  if (!Number.isSafeInteger(e.sectors) || e.sectors <= 0) {
    throw new VmdkError('bad-extent-size', `extent ${index} (${e.path}): sector count ${e.sectors} is not a positive integer`);
  }
  if (!Number.isSafeInteger(e.offset) || e.offset < 0) {
    throw new VmdkError('bad-extent-offset', `extent ${index} (${e.path}): offset ${e.offset} is not a non-negative integer`);
  }
}

/** Extents as written: split into <= 4194304-sector pieces when asked. */
export function expandExtents(extents: Extent[], options: RenderOptions = {}): Extent[] {
  if (!options.split2g) return extents.map((e) => ({ ...e }));
  const out: Extent[] = [];
  for (const e of extents) {
    for (let done = 0; done < e.sectors; done += SPLIT_SECTORS) {
      out.push({ path: e.path, sectors: Math.min(SPLIT_SECTORS, e.sectors - done), offset: e.offset + done });
    }
  }
  return out;
}

export function extentLine(e: Extent): string {
  return `RW ${e.sectors} FLAT "${e.path}" ${e.offset}`;
}

/**
 * Content-derived CID: the first 8 hex digits of sha256(extent lines) that are
 * not one of the reserved values. Same extents → same CID, so re-rendering is
 * idempotent and the descriptor is content-addressable.
 */
export function contentCid(extentLines: string[]): string {
  const digest = createHash('sha256').update(extentLines.join('\n')).digest('hex');
  for (let i = 0; i + 8 <= digest.length; i += 8) {
    const cid = digest.slice(i, i + 8);
    if (!RESERVED_CIDS.has(cid)) return cid;
  }
  return '00000001'; // unreachable in practice: all 8 windows reserved
}

/** IDE-style geometry readers expect in the DDB. */
export function geometryCylinders(totalSectors: number): number {
  return Math.min(16383, Math.ceil(totalSectors / 1008));
}

export function renderDescriptor(extents: Extent[], options: RenderOptions = {}): string {
  if (extents.length === 0) throw new VmdkError('no-extents', 'a descriptor needs at least one extent');
  extents.forEach(checkExtent);
  const pieces = expandExtents(extents, options);
  const lines = pieces.map(extentLine);
  const total = pieces.reduce((sum, e) => sum + e.sectors, 0);
  const text = [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${contentCid(lines)}`,
    'parentCID=ffffffff',
    `createType="${CREATE_TYPE}"`,
    '',
    '# Extent description',
    ...lines,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    'ddb.virtualHWVersion = "4"',
    `ddb.geometry.cylinders = "${geometryCylinders(total)}"`,
    'ddb.geometry.heads = "16"',
    'ddb.geometry.sectors = "63"',
    'ddb.adapterType = "ide"',
    '',
  ];
  // The trailing '' gives a final LF; it is not a line.
  if (text.length - 1 >= MAX_DESCRIPTOR_LINES) {
    throw new VmdkError(
      'too-many-extents',
      `${pieces.length} extent lines make a ${text.length - 1}-line descriptor; readers accept fewer than ${MAX_DESCRIPTOR_LINES}`,
    );
  }
  return text.join('\n');
}

// ---- parsing ---------------------------------------------------------------

export interface ParsedKeyValue {
  key: string;
  value: string;
  /** 1-based line number. */
  line: number;
}

export interface ParsedExtent {
  line: number;
  raw: string;
  access: string;
  sectors: number;
  type: string;
  /** Undefined for extents without a file (ZERO) or short lines. */
  path?: string;
  offset?: number;
  /** Number of whitespace-separated fields before the quoted path is considered. */
  fields: number;
}

export interface ParsedDescriptor {
  /** Lines split on LF; a CR is kept in the text of the line it ends. */
  lines: string[];
  /** 1-based numbers of lines that contain a CR. */
  crLines: number[];
  header: ParsedKeyValue[];
  extents: ParsedExtent[];
  ddb: ParsedKeyValue[];
  /** Lines that are neither comments, blank, header, extent nor DDB entries. */
  unknown: { line: number; text: string }[];
}

const EXTENT_RE = /^(\S+)\s+(\S+)\s+(\S+)(?:\s+"([^"]*)"(?:\s+(\S+))?)?\s*$/;
const HEADER_RE = /^([A-Za-z][A-Za-z0-9_.]*)=(.*)$/;
const DDB_RE = /^(ddb\.[^=\s]+)\s*=\s*"(.*)"\s*$/;

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

function parseExtentLine(text: string, line: number): ParsedExtent | undefined {
  const m = EXTENT_RE.exec(text.trim());
  if (!m) return undefined;
  const fields = text.trim().split(/\s+/).length;
  const sectors = /^\d+$/.test(m[2]) ? Number(m[2]) : NaN;
  const extent: ParsedExtent = { line, raw: text, access: m[1], sectors, type: m[3], fields };
  if (m[4] !== undefined) extent.path = m[4];
  if (m[5] !== undefined) extent.offset = /^\d+$/.test(m[5]) ? Number(m[5]) : NaN;
  return extent;
}

const ACCESS_WORDS = new Set(['RW', 'RDONLY', 'NOACCESS']);

/** Tolerant parser: records everything, judges nothing (that is lintDescriptor's job). */
export function parseDescriptor(text: string): ParsedDescriptor {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const parsed: ParsedDescriptor = { lines, crLines: [], header: [], extents: [], ddb: [], unknown: [] };
  lines.forEach((rawLine, i) => {
    const line = i + 1;
    if (rawLine.includes('\r')) parsed.crLines.push(line);
    const t = rawLine.replace(/\r/g, '').trim();
    if (t === '' || t.startsWith('#')) return;
    const first = t.split(/\s+/)[0];
    if (ACCESS_WORDS.has(first)) {
      const extent = parseExtentLine(rawLine.replace(/\r/g, ''), line);
      if (extent) parsed.extents.push(extent);
      else parsed.unknown.push({ line, text: rawLine });
      return;
    }
    const ddb = DDB_RE.exec(t);
    if (ddb) {
      parsed.ddb.push({ key: ddb[1], value: ddb[2], line });
      return;
    }
    const kv = HEADER_RE.exec(t);
    if (kv) {
      parsed.header.push({ key: kv[1], value: unquote(kv[2]), line });
      return;
    }
    parsed.unknown.push({ line, text: rawLine });
  });
  return parsed;
}
