/**
 * `erofs-vmdk merge --out FSMETA L1.erofs … Ln.erofs`: builds the merged
 * metadata-only EROFS image (fsmeta) of layer blobs, bottom layer first like
 * mkfs.erofs and `device=` order. The output is written atomically; a refusal
 * prints one line and exits 2 without touching the output.
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../../atomic/write-file-atomic';
import { MergeError, mergeLayersWithLayout, type MergeLayer } from '../../merge';
import type { Command } from '../command';
import { EXIT_ERROR, EXIT_OK } from '../command';
import { inputOverwrittenBy, unreplaceableOutput } from '../output-guard';

const USAGE = `Usage: erofs-vmdk merge --out FSMETA [--tag TAG]... [--json] LAYER.erofs...

Build the merged metadata-only EROFS image (fsmeta) of per-layer EROFS blobs with
overlay semantics (whiteouts, opaque directories), like
"mkfs.erofs --aufs --ovlfs-strip=1 FSMETA LAYER...". Layers are given bottom
first (the order of device= options). No file data is copied: regular files point
at blocks inside the layer blobs; device k of the result is the k-th layer, with
uniaddr set for the flat layout FSMETA + LAYER1 + ... + LAYERn.

Options:
  --out FSMETA   where to write the image (atomically; parent directory must exist)
  --tag TAG      device-table tag of the next layer, in layer order (repeat once per
                 layer, or not at all: default is each layer's UUID as 32 hex digits)
  --json         print the resulting flat layout (block size, slot sizes, uniaddr) as JSON

Exit status: 0 written, 2 refused or bad usage (one line on stderr).`;

interface Parsed {
  out: string;
  tags: string[];
  layers: string[];
  json: boolean;
}

function parseArgs(argv: string[]): Parsed {
  const parsed: Parsed = { out: '', tags: [], layers: [], json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--out' || arg === '-o') parsed.out = value();
    else if (arg.startsWith('--out=')) parsed.out = arg.slice('--out='.length);
    else if (arg === '--tag') parsed.tags.push(value());
    else if (arg === '--json') parsed.json = true;
    else if (arg === '--') parsed.layers.push(...argv.slice(i + 1)), (i = argv.length);
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else parsed.layers.push(arg);
  }
  if (!parsed.out) throw new Error('--out FSMETA is required');
  if (parsed.layers.length === 0) throw new Error('at least one layer is required');
  if (parsed.tags.length > 0 && parsed.tags.length !== parsed.layers.length) {
    throw new Error(`${parsed.tags.length} --tag values for ${parsed.layers.length} layers (give one per layer or none)`);
  }
  return parsed;
}

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'build the merged fsmeta image of EROFS layer blobs (native fsmerge)',
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    let parsed: Parsed;
    try {
      parsed = parseArgs(argv);
    } catch (err) {
      process.stderr.write(`erofs-vmdk merge: ${(err as Error).message}\n`);
      return EXIT_ERROR;
    }
    const out = path.resolve(parsed.out);
    const layers: MergeLayer[] = parsed.layers.map((p, i) => {
      const layer: MergeLayer = { path: path.resolve(p) };
      if (parsed.tags.length > 0) layer.tag = parsed.tags[i];
      return layer;
    });
    const unreplaceable = unreplaceableOutput(out);
    if (unreplaceable !== undefined) {
      process.stderr.write(`erofs-vmdk merge: --out ${out}: ${unreplaceable}\n`);
      return EXIT_ERROR;
    }
    if (layers.some((l) => l.path === out) || inputOverwrittenBy(out, layers.map((l) => l.path)) !== undefined) {
      process.stderr.write(`erofs-vmdk merge: --out ${out} is also a layer\n`);
      return EXIT_ERROR;
    }
    try {
      const result = mergeLayersWithLayout(layers);
      writeFileAtomic(out, result.fsmeta);
      if (parsed.json) {
        const { blockSize, fsmetaBlocks, devices } = result;
        process.stdout.write(`${JSON.stringify({ fsmeta: out, blockSize, fsmetaBlocks, devices }, null, 2)}\n`);
      }
      return EXIT_OK;
    } catch (err) {
      const message = err instanceof MergeError ? `${err.message} [${err.code}]` : (err as Error).message;
      process.stderr.write(`erofs-vmdk merge: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
      return EXIT_ERROR;
    }
  },
};
