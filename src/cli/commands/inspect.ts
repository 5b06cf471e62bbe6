/**
 * `erofs-vmdk inspect FILE…`: what an EROFS image or a VMDK descriptor says, and
 * every finding. Exit 0 when all files are clean, 1 when there are findings, 2
 * when a file cannot be read or is neither kind.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { describeImage, formatImageDescription, type ImageDescription } from '../../erofs/describe';
import { OPEN_INPUT_FLAGS, readImageHead } from '../../erofs/image';
import { hasErofsMagic } from '../../erofs/superblock';
import { checkDescriptorFile, formatDescriptorReport, type DescriptorReport } from '../../vmdk/check-descriptor';
import type { Command } from '../command';
import { EXIT_ERROR, EXIT_FINDINGS, EXIT_OK } from '../command';
import { oneLine } from '../one-line';

const usage = `Usage: erofs-vmdk inspect [--json] FILE…

For an EROFS image: superblock fields, feature names, device table, checksum
status and header findings. For a VMDK descriptor: parsed extents and every lint
finding (design §5 rules, the files it names, and — when the first extent is an
fsmeta — whether each device lands where its slot's uniaddr says).
Exit: 0 no findings; 1 findings; 2 a file is unreadable or neither kind.`;

type Kind = 'erofs' | 'vmdk';

function sniff(file: string): Kind {
  const fd = fs.openSync(file, OPEN_INPUT_FLAGS); // a FIFO must be refused, not block the open
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error('not a regular file');
    const head = Buffer.alloc(1028);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (hasErofsMagic(head.subarray(0, n))) return 'erofs';
    const text = head.subarray(0, n).toString('latin1');
    if (/^\uFEFF?#\s*Disk DescriptorFile/i.test(text) || file.endsWith('.vmdk')) return 'vmdk';
    if (n < 1028) throw new Error(`${n} bytes: too short for an EROFS image and not a VMDK descriptor`);
    throw new Error(`not an EROFS image (magic 0x${head.readUInt32LE(1024).toString(16)}) and not a VMDK descriptor`);
  } finally {
    fs.closeSync(fd);
  }
}

type Result = { kind: 'erofs'; report: ImageDescription } | { kind: 'vmdk'; report: DescriptorReport };

function inspectFile(file: string): Result {
  const kind = sniff(file);
  if (kind === 'erofs') {
    const report = describeImage(readImageHead(file));
    // No superblock to show: the image is unreadable, not merely flawed.
    if (!report.superblock) throw new Error(report.findings.map((f) => f.message.replace(`${file}: `, '')).join('; '));
    return { kind, report };
  }
  return { kind, report: checkDescriptorFile(file) };
}

function toJson(r: Result): unknown {
  if (r.kind === 'erofs') {
    const d = r.report;
    return { kind: 'erofs', ...d, superblock: d.superblock && { ...d.superblock, uuidBytes: undefined } };
  }
  const { file, parsed, findings } = r.report;
  return { kind: 'vmdk', file, header: parsed.header, extents: parsed.extents, ddb: parsed.ddb, findings };
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show and lint EROFS images and VMDK descriptors',
  usage,
  async run(argv) {
    let files: string[];
    let json: boolean;
    try {
      const { values, positionals } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
      files = positionals;
      json = values.json ?? false;
      if (files.length === 0) throw new Error('give at least one FILE');
    } catch (err) {
      process.stderr.write(`erofs-vmdk inspect: ${oneLine((err as Error).message)}\n`);
      return EXIT_ERROR;
    }
    const results: Result[] = [];
    let unreadable = false;
    for (const file of files) {
      try {
        results.push(inspectFile(file));
      } catch (err) {
        unreadable = true;
        const e = err as NodeJS.ErrnoException;
        const why = e.code && e.syscall ? `${e.code}: cannot ${e.syscall}` : e.message;
        process.stderr.write(`erofs-vmdk inspect: ${oneLine(JSON.stringify(file))}: ${oneLine(why)}\n`);
      }
    }
    if (json) {
      process.stdout.write(`${JSON.stringify(results.map(toJson), (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
    } else {
      for (const r of results) {
        process.stdout.write(`${r.kind === 'erofs' ? formatImageDescription(r.report) : formatDescriptorReport(r.report)}\n`);
      }
    }
    if (unreadable) return EXIT_ERROR;
    return results.some((r) => r.report.findings.length > 0) ? EXIT_FINDINGS : EXIT_OK;
  },
};
