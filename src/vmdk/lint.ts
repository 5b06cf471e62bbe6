/**
 * Lints a parsed descriptor against every rule of design §5, plus (optionally)
 * the files it names and the EROFS device table it should follow. Returns every
 * finding; an empty list means the descriptor is safe for every known reader.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CREATE_TYPE,
  HEADER_KEYS,
  MAX_DESCRIPTOR_LINES,
  RESERVED_CIDS,
  SECTOR_SIZE,
  geometryCylinders,
  type ParsedDescriptor,
  type ParsedExtent,
} from './descriptor';
import { showPath, unsafePathProblem } from './paths';

export interface LintFinding {
  code: string;
  message: string;
  /** 1-based descriptor line, when the finding is about one line. */
  line?: number;
}

/**
 * The flat layout an EROFS device table asks for. Units: `blockSize` bytes for
 * primaryBlocks/uniaddr/blocks; `dataOffset` in bytes inside the device's file
 * (0 for a plain layer, the index size for a tar-index layer).
 */
export interface DeviceLayout {
  blockSize: number;
  primaryBlocks: number;
  /**
   * dataBytes (optional): how many bytes of device data the device's own image
   * declares (a layer's blocks_lo, a tar-index layer's tar blocks); the extent
   * must cover them even when the slot's `blocks` says less (mkfs mixedbs bug).
   */
  devices: { uniaddr: number; blocks: number; dataOffset: number; dataBytes?: number }[];
}

export interface LintOptions {
  /** Directory relative extent paths are resolved against (the descriptor's). */
  baseDir?: string;
  deviceLayout?: DeviceLayout;
  /** Look at the files (existence, size, symlinks). Default true. */
  checkFiles?: boolean;
}

const CREATE_TYPES_FLAT = new Set([CREATE_TYPE, 'monolithicFlat']);

function lintHeader(d: ParsedDescriptor, out: LintFinding[]): void {
  const seen = new Map<string, number>();
  for (const h of d.header) {
    if (!(HEADER_KEYS as readonly string[]).includes(h.key)) {
      out.push({ code: 'header-key-unknown', line: h.line, message: `line ${h.line}: header key "${h.key}" is not one of ${HEADER_KEYS.join('/')} (libkrun rejects it)` });
      continue;
    }
    if (seen.has(h.key)) out.push({ code: 'header-key-duplicate', line: h.line, message: `line ${h.line}: header key "${h.key}" repeated` });
    seen.set(h.key, h.line);
  }
  for (const key of HEADER_KEYS) {
    if (!seen.has(key)) out.push({ code: 'header-key-missing', message: `header key "${key}" is missing` });
  }
  const value = (key: string) => d.header.find((h) => h.key === key);
  const version = value('version');
  if (version && version.value !== '1') out.push({ code: 'header-version', line: version.line, message: `line ${version.line}: version=${version.value}, expected 1` });
  const cid = value('CID');
  if (cid && !/^[0-9a-f]{8}$/.test(cid.value)) {
    out.push({ code: 'cid-invalid', line: cid.line, message: `line ${cid.line}: CID "${cid.value}" is not 8 lowercase hex digits` });
  } else if (cid && RESERVED_CIDS.has(cid.value)) {
    out.push({ code: 'cid-reserved', line: cid.line, message: `line ${cid.line}: CID ${cid.value} is reserved (means no/invalid CID)` });
  }
  const parent = value('parentCID');
  if (parent && parent.value !== 'ffffffff') {
    out.push({ code: 'has-parent', line: parent.line, message: `line ${parent.line}: parentCID=${parent.value}, a flat disk must have none (ffffffff)` });
  }
  const createType = value('createType');
  if (createType && !CREATE_TYPES_FLAT.has(createType.value)) {
    out.push({ code: 'create-type', line: createType.line, message: `line ${createType.line}: createType "${createType.value}" is not a flat type` });
  }
}

function lintExtentSyntax(e: ParsedExtent, out: LintFinding[]): void {
  const at = `line ${e.line}`;
  if (e.access !== 'RW') {
    out.push({ code: 'extent-access', line: e.line, message: `${at}: access "${e.access}": QEMU drops non-RW extents and shifts every later one` });
  }
  if (e.type !== 'FLAT') {
    out.push({ code: 'extent-type', line: e.line, message: `${at}: extent type "${e.type}", only FLAT is allowed (pad gaps with a zero-filled file)` });
  }
  if (!Number.isSafeInteger(e.sectors) || e.sectors <= 0) {
    out.push({ code: 'extent-size', line: e.line, message: `${at}: sector count is not a positive decimal integer` });
  }
  if (e.path === undefined) {
    out.push({ code: 'extent-short-line', line: e.line, message: `${at}: fewer than 4 fields (no file name): QEMU drops the line` });
    return;
  }
  if (e.offset === undefined) {
    out.push({ code: 'extent-missing-offset', line: e.line, message: `${at}: no explicit offset` });
  } else if (!Number.isSafeInteger(e.offset)) {
    out.push({ code: 'extent-offset', line: e.line, message: `${at}: offset is not a decimal integer` });
  } else if (e.offset !== 0) {
    out.push({ code: 'extent-nonzero-offset', line: e.line, message: `${at}: offset ${e.offset} is not 0 (libkrun reads offsets as bytes)` });
  }
  const canonical = `${e.access} ${e.raw.trim().split(/\s+/)[1]} ${e.type} "${e.path}"${e.offset === undefined ? '' : ` ${e.raw.trim().split(/\s+/).pop()}`}`;
  if (e.raw !== canonical) {
    out.push({ code: 'whitespace', line: e.line, message: `${at}: not single-space separated (or has leading/trailing blanks)` });
  }
  const unsafe = unsafePathProblem(e.path);
  if (unsafe) out.push({ code: 'unsafe-path', line: e.line, message: `${at}: ${unsafe.message}` });
  if (!path.isAbsolute(e.path)) {
    out.push({ code: 'relative-path', line: e.line, message: `${at}: path ${showPath(e.path)} is relative (resolved against the descriptor's directory by some readers only)` });
  }
}

function lintExtentFile(e: ParsedExtent, baseDir: string, out: LintFinding[]): void {
  if (e.path === undefined || e.path === '') return;
  const at = `line ${e.line}`;
  const file = path.resolve(baseDir, e.path);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (err) {
    out.push({ code: 'extent-file-missing', line: e.line, message: `${at}: ${showPath(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    return;
  }
  if (path.isAbsolute(e.path)) {
    try {
      if (fs.realpathSync(file) !== e.path) {
        out.push({ code: 'path-not-resolved', line: e.line, message: `${at}: ${showPath(e.path)} goes through a symlink (resolves to ${showPath(fs.realpathSync(file))})` });
      }
    } catch {
      /* stat succeeded, realpath cannot fail meaningfully here */
    }
  }
  if (Number.isSafeInteger(e.sectors) && e.sectors > 0) {
    const needed = ((Number.isSafeInteger(e.offset) ? (e.offset as number) : 0) + e.sectors) * SECTOR_SIZE;
    if (size < needed) {
      out.push({ code: 'extent-file-short', line: e.line, message: `${at}: ${showPath(file)} has ${size} bytes, the extent needs ${needed}` });
    }
  }
}

interface Run {
  path: string;
  start: number; // flat sector where the run starts
  offset: number; // file sector where it starts
  sectors: number;
  line: number;
}

/** Groups consecutive extents of one file (2 GiB split pieces) into runs. */
function fileRuns(extents: ParsedExtent[]): Run[] {
  const runs: Run[] = [];
  let flat = 0;
  for (const e of extents) {
    const sectors = Number.isSafeInteger(e.sectors) ? e.sectors : 0;
    const offset = Number.isSafeInteger(e.offset) ? (e.offset as number) : 0;
    const last = runs[runs.length - 1];
    if (last && last.path === e.path && last.offset + last.sectors === offset) last.sectors += sectors;
    else runs.push({ path: e.path ?? '', start: flat, offset, sectors, line: e.line });
    flat += sectors;
  }
  return runs;
}

function lintLayout(extents: ParsedExtent[], layout: DeviceLayout, out: LintFinding[]): void {
  const runs = fileRuns(extents);
  const perBlock = layout.blockSize / SECTOR_SIZE;
  if (runs.length !== layout.devices.length + 1) {
    out.push({ code: 'layout-extent-count', message: `descriptor names ${runs.length} files, the device table needs ${layout.devices.length + 1} (fsmeta + ${layout.devices.length} devices)` });
    return;
  }
  const primary = runs[0];
  if (primary.offset !== 0 || primary.sectors < layout.primaryBlocks * perBlock) {
    out.push({ code: 'layout-mismatch', line: primary.line, message: `line ${primary.line}: the primary image must be mapped from its start for ${layout.primaryBlocks * perBlock} sectors` });
  }
  layout.devices.forEach((dev, i) => {
    const run = runs[i + 1];
    const dataSector = dev.dataOffset / SECTOR_SIZE;
    const flatDataStart = run.start + dataSector - run.offset;
    if (flatDataStart !== dev.uniaddr * perBlock) {
      out.push({ code: 'layout-mismatch', line: run.line, message: `line ${run.line}: device ${i + 1} data starts at sector ${flatDataStart}, its slot says uniaddr ${dev.uniaddr} = sector ${dev.uniaddr * perBlock}` });
    } else {
      const need = Math.max(dev.blocks * perBlock, (dev.dataBytes ?? 0) / SECTOR_SIZE);
      if (run.offset > dataSector || run.offset + run.sectors < dataSector + need) {
        out.push({ code: 'layout-mismatch', line: run.line, message: `line ${run.line}: extent does not cover device ${i + 1}'s ${need} sectors of data` });
      }
    }
  });
}

export function lintDescriptor(d: ParsedDescriptor, options: LintOptions = {}): LintFinding[] {
  const out: LintFinding[] = [];
  if (d.crLines.length > 0) {
    out.push({ code: 'cr-line-ending', line: d.crLines[0], message: `CR characters on ${d.crLines.length} line(s), first at line ${d.crLines[0]}: use LF only` });
  }
  if (d.lines.length >= MAX_DESCRIPTOR_LINES) {
    out.push({ code: 'too-many-lines', message: `${d.lines.length} lines; readers accept fewer than ${MAX_DESCRIPTOR_LINES}` });
  }
  lintHeader(d, out);
  for (const u of d.unknown) out.push({ code: 'malformed-line', line: u.line, message: `line ${u.line}: not a header, extent or DDB entry: ${showPath(u.text)}` });
  if (d.extents.length === 0) out.push({ code: 'no-extents', message: 'no extent lines' });
  for (const e of d.extents) lintExtentSyntax(e, out);
  if (options.checkFiles !== false && options.baseDir !== undefined) {
    for (const e of d.extents) lintExtentFile(e, options.baseDir, out);
  }
  const total = d.extents.reduce((s, e) => s + (Number.isSafeInteger(e.sectors) ? e.sectors : 0), 0);
  const cylinders = d.ddb.find((k) => k.key === 'ddb.geometry.cylinders');
  if (cylinders && cylinders.value !== String(geometryCylinders(total))) {
    out.push({ code: 'ddb-geometry', line: cylinders.line, message: `line ${cylinders.line}: cylinders "${cylinders.value}", expected ${geometryCylinders(total)} for ${total} sectors` });
  }
  if (options.deviceLayout && d.extents.length > 0) lintLayout(d.extents, options.deviceLayout, out);
  return out;
}
