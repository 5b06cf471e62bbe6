/**
 * Lints a descriptor file on disk, including the files it names and, when its
 * first extent is an fsmeta with a device table, whether the extents place each
 * device where that table says (the flat-mode data path).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { declaredDeviceLayout, validateFlatLayout } from '../erofs/flat-layout';
import { readImageHead, type ImageInput } from '../erofs/image';
import { hasErofsMagic } from '../erofs/superblock';
import { parseDescriptor, type ParsedDescriptor } from './descriptor';
import { lintDescriptor, type LintFinding } from './lint';

export interface DescriptorReport {
  file: string;
  parsed: ParsedDescriptor;
  findings: LintFinding[];
}


/** Distinct files in extent order (2 GiB split pieces of one file count once). */
function filesInOrder(parsed: ParsedDescriptor): string[] {
  const out: string[] = [];
  for (const e of parsed.extents) if (e.path !== undefined && out[out.length - 1] !== e.path) out.push(e.path);
  return out;
}

/** Device-table findings; undefined layout when the files do not form an fsmeta + layers set. */
function layoutFindings(parsed: ParsedDescriptor, baseDir: string): LintFinding[] {
  const files = filesInOrder(parsed).map((p) => path.resolve(baseDir, p));
  if (files.length === 0) return [];
  let images: ImageInput[];
  try {
    images = files.map((f) => readImageHead(f));
  } catch {
    return []; // missing files are already findings of the lint
  }
  if (!images.every((image) => hasErofsMagic(image.head))) return [];
  const [fsmeta, ...blobs] = images;
  const report = validateFlatLayout(fsmeta, blobs);
  if (!report.superblock?.hasDeviceTable) return [];
  const out: LintFinding[] = report.problems
    // slot blocks/uniaddr are judged on the actual extents below, not on the whole-file layout
    .filter((p) => p.code !== 'slot-blocks' && p.code !== 'slot-uniaddr')
    .map((p) => ({ code: p.code, message: p.message }));
  const layout = declaredDeviceLayout(report);
  if (layout) out.push(...lintDescriptor(parsed, { deviceLayout: layout, checkFiles: false }).filter((f) => f.code.startsWith('layout-')));
  return out;
}

export function checkDescriptorFile(file: string): DescriptorReport {
  const text = fs.readFileSync(file, 'utf8');
  const parsed = parseDescriptor(text);
  const baseDir = path.dirname(path.resolve(file));
  const findings = lintDescriptor(parsed, { baseDir });
  findings.push(...layoutFindings(parsed, baseDir));
  return { file, parsed, findings };
}

export function formatDescriptorReport(r: DescriptorReport): string {
  const lines = [`${r.file}: VMDK descriptor, ${r.parsed.extents.length} extents`];
  for (const e of r.parsed.extents) {
    lines.push(`  line ${e.line}: ${e.access} ${e.sectors} ${e.type} ${e.path === undefined ? '-' : JSON.stringify(e.path)} ${e.offset ?? '-'}`);
  }
  for (const f of r.findings) lines.push(`  finding ${f.code}: ${f.message}`);
  if (r.findings.length === 0) lines.push('  no findings');
  return lines.join('\n');
}
