/**
 * `erofs-vmdk vmdk`: write a VMDK flat descriptor for fsmeta + layer blobs (or
 * one layer, or several layers merged natively first). Validates everything
 * before writing anything; repairs the fsmeta into a copy when only its slots
 * are wrong. Errors: exit 2, one line naming the file and the problem.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../atomic/write-file-atomic';
import { ErofsFormatError, prepareFlatDisk, resolveImagePath, sameFile, type FlatDisk } from '../../erofs';
import { MergeError, mergeLayers } from '../../merge';
import { VmdkError, renderDescriptor } from '../../vmdk';
import type { Command } from '../command';
import { EXIT_ERROR, EXIT_OK } from '../command';
import { oneLine } from '../one-line';
import { inputOverwrittenBy, unreplaceableOutput } from '../output-guard';

const usage = `Usage:
  erofs-vmdk vmdk --fsmeta F --device L1 [--device L2 …] --out D.vmdk [options]
  erofs-vmdk vmdk --layer L.erofs --out D.vmdk [options]            (one layer, no fsmeta)
  erofs-vmdk vmdk --layer L1 --layer L2 [--layer L3 …] --out D.vmdk  (merge natively first)

Writes a VMDK flat descriptor (RW FLAT extents, absolute symlink-resolved paths,
offset 0) for fsmeta ‖ L1 ‖ … ‖ Ln. Layers/devices are given bottom first, the
order of containerd's device= options. The fsmeta's device table is checked
against the layer files; when only slot uniaddr/blocks/empty tags are wrong, a
corrected copy is written to the state dir (the input is never modified).

Options:
  --fsmeta F        metadata-only EROFS image with a device table
  --device L        layer blob for the next device slot (repeat, bottom first)
  --layer L         layer blob without an fsmeta (one: used alone; several: merged)
  --out D.vmdk      descriptor to write (atomically)
  --state-dir DIR   where repaired/merged fsmeta copies go (default: next to --out)
  --split-2g        split extents at 4194304 sectors (VMware style; not the default)
  --json            print the result as JSON
Exit: 0 written; 2 refused or failed (one line naming the file; nothing written).`;

interface Options {
  fsmeta?: string;
  devices: string[];
  layers: string[];
  out: string;
  stateDir: string;
  split2g: boolean;
  json: boolean;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      fsmeta: { type: 'string' },
      device: { type: 'string', multiple: true },
      layer: { type: 'string', multiple: true },
      out: { type: 'string' },
      'state-dir': { type: 'string' },
      'split-2g': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (!values.out) throw new UsageError('--out is required');
  const devices = values.device ?? [];
  const layers = values.layer ?? [];
  if (values.fsmeta !== undefined) {
    if (layers.length > 0) throw new UsageError('--layer cannot be combined with --fsmeta (use --device)');
    if (devices.length === 0) throw new UsageError('--fsmeta needs at least one --device');
  } else {
    if (devices.length > 0) throw new UsageError('--device needs --fsmeta (or use --layer)');
    if (layers.length === 0) throw new UsageError('give --fsmeta F --device L… or --layer L…');
  }
  const out = path.resolve(values.out);
  return {
    fsmeta: values.fsmeta,
    devices,
    layers,
    out,
    stateDir: path.resolve(values['state-dir'] ?? path.dirname(out)),
    split2g: values['split-2g'] ?? false,
    json: values.json ?? false,
  };
}

interface Merged {
  path: string;
  created: boolean;
  /** The state dir did not exist before the merge. */
  createdDir: boolean;
}

/** Native merge of several layers into <stateDir>/<sha256>.erofs (content-addressed). */
function mergeIntoStateDir(layers: string[], stateDir: string): Merged {
  // Refuse hostile or missing layers before building anything.
  const resolved = layers.map((l, i) => resolveImagePath(l, `layer ${i + 1}`));
  const bytes = mergeLayers(resolved.map((p) => ({ path: p })));
  const target = path.join(stateDir, `${createHash('sha256').update(bytes).digest('hex')}.erofs`);
  const createdDir = !fs.existsSync(stateDir);
  fs.mkdirSync(stateDir, { recursive: true });
  // A file at the content-addressed name is reused only if it really holds
  // these bytes: anything else there (truncated, replaced) is rewritten.
  const created = !sameFile(target, bytes);
  if (created) writeFileAtomic(target, bytes);
  return { path: target, created, createdDir };
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir); // fails (and is left alone) when not empty
  } catch {
    /* not empty or already gone */
  }
}

function report(o: Options, disk: FlatDisk, merged: Merged | undefined): string {
  const sectors = disk.extents.reduce((s, e) => s + e.sectors, 0);
  if (o.json) {
    return `${JSON.stringify({
      out: o.out,
      extents: disk.extents,
      sectors,
      fsmeta: disk.fsmetaPath ?? null,
      merged: merged !== undefined,
      repaired: disk.repaired,
      problems: disk.problems,
    }, null, 2)}\n`;
  }
  const lines = [`wrote ${o.out}: ${disk.extents.length} extents, ${sectors} sectors (${sectors * 512} bytes)`];
  if (merged) lines.push(`fsmeta merged natively: ${merged.path}`);
  if (disk.repaired) lines.push(`fsmeta repaired: ${disk.fsmetaPath} (copy of ${o.fsmeta ?? merged?.path})`);
  for (const p of disk.problems) lines.push(`  fixed ${p.code}: ${p.message}`);
  for (const e of disk.extents) lines.push(`  RW ${e.sectors} FLAT ${e.path} ${e.offset}`);
  return `${lines.join('\n')}\n`;
}

function checkOut(out: string, inputs: string[]): void {
  const dir = path.dirname(out);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UsageError(`--out ${out}: directory ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new UsageError(`--out ${out}: ${dir} is not a directory`);
  const unreplaceable = unreplaceableOutput(out);
  if (unreplaceable !== undefined) throw new UsageError(`--out ${out}: ${unreplaceable}`);
  const clobbered = inputOverwrittenBy(out, inputs);
  if (clobbered !== undefined) throw new UsageError(`--out ${out}: is the input ${JSON.stringify(clobbered)}; writing the descriptor would destroy it`);
}

export const vmdkCommand: Command = {
  name: 'vmdk',
  summary: 'write a VMDK flat descriptor for fsmeta + layer blobs (validate, repair a copy)',
  usage,
  async run(argv) {
    let merged: Merged | undefined;
    try {
      const o = parseOptions(argv);
      checkOut(o.out, [...(o.fsmeta === undefined ? [] : [o.fsmeta]), ...o.devices, ...o.layers]);
      let input: { fsmeta?: string; layers: string[] };
      if (o.fsmeta !== undefined) input = { fsmeta: o.fsmeta, layers: o.devices };
      else if (o.layers.length === 1) input = { layers: o.layers };
      else {
        merged = mergeIntoStateDir(o.layers, o.stateDir);
        input = { fsmeta: merged.path, layers: o.layers };
      }
      const disk = prepareFlatDisk(input, { repairDir: o.stateDir });
      const text = renderDescriptor(disk.extents, { split2g: o.split2g });
      writeFileAtomic(o.out, text);
      process.stdout.write(report(o, disk, merged));
      return EXIT_OK;
    } catch (err) {
      // A merged fsmeta we just created is useless once refused: leave nothing behind.
      if (merged?.created) fs.rmSync(merged.path, { force: true });
      if (merged?.createdDir) removeIfEmpty(path.dirname(merged.path));
      if (err instanceof ErofsFormatError || err instanceof VmdkError || err instanceof UsageError) {
        process.stderr.write(`erofs-vmdk vmdk: ${oneLine(err.message)}\n`);
      } else if (err instanceof MergeError) {
        process.stderr.write(`erofs-vmdk vmdk: merge failed (${err.code}): ${oneLine(err.message)}\n`);
      } else if ((err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: unknown }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
        process.stderr.write(`erofs-vmdk vmdk: ${oneLine((err as Error).message)} (see --help)\n`);
      } else {
        process.stderr.write(`erofs-vmdk vmdk: ${oneLine((err as Error).message ?? String(err))}\n`);
      }
      return EXIT_ERROR;
    }
  },
};
