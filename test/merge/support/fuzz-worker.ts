/**
 * Fuzz worker (runs in a worker thread so the parent can detect a hang and kill
 * it): mutates layer images deterministically from a seed, feeds each mutated
 * set to mergeLayers, and reports every outcome. Anything thrown that is not a
 * MergeError is a crash and ends the run. A sample of accepted merges is kept on
 * disk for the parent to mount and compare with the overlay oracle.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { writeSuperblockChecksum } from '../../../src/erofs/checksum';
import { MergeError, mergeLayers } from '../../../src/merge';
import { mulberry32 } from '../../support/prng';

export interface FuzzInput {
  sets: { name: string; layers: string[] }[];
  iterations: number;
  seed: number;
  outDir: string;
  /** Keep every n-th accepted case whose merged image differs from the unmutated one, up to `keepMax`. */
  keepEvery: number;
  keepMax: number;
}

export interface KeptCase {
  index: number;
  set: string;
  layers: string[];
  fsmeta: string;
  mutation: string;
}

export type FuzzMessage =
  | { type: 'start'; index: number; mutation: string }
  | { type: 'crash'; index: number; mutation: string; error: string }
  | { type: 'done'; accepted: number; changed: number; refused: Record<string, number>; kept: KeptCase[] };


const INTERESTING_32 = [0, 1, 2, 0x7f, 0xff, 0x100, 0xfff, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(original: Buffer, rnd: () => number): { bytes: Buffer; what: string } {
  const int = (n: number): number => Math.floor(rnd() * n);
  let bytes = Buffer.from(original);
  const ops: string[] = [];
  // Most of the structure is in the first blocks; aim there more often.
  const pos = (): number => (rnd() < 0.75 ? int(Math.min(bytes.length, 8192)) : int(bytes.length));
  const count = 1 + int(3);
  for (let k = 0; k < count; k++) {
    const op = int(100);
    if (op < 30) {
      const at = pos();
      const bit = int(8);
      bytes[at] ^= 1 << bit;
      ops.push(`flip@${at}.${bit}`);
    } else if (op < 50) {
      const at = pos();
      const n = 1 + int(8);
      for (let i = 0; i < n && at + i < bytes.length; i++) bytes[at + i] = int(256);
      ops.push(`rand@${at}x${n}`);
    } else if (op < 75) {
      const at = pos() & ~1;
      const value = INTERESTING_32[int(INTERESTING_32.length)];
      if (rnd() < 0.5 && at + 2 <= bytes.length) {
        bytes.writeUInt16LE(value & 0xffff, at);
        ops.push(`u16@${at}=${value & 0xffff}`);
      } else if ((at & ~3) + 4 <= bytes.length) {
        bytes.writeUInt32LE(value >>> 0, at & ~3);
        ops.push(`u32@${at & ~3}=${value >>> 0}`);
      }
    } else if (op < 95) {
      const from = pos();
      const to = pos();
      const n = Math.min(12 + int(52), bytes.length - from, bytes.length - to);
      if (n > 0) bytes.copy(bytes, to, from, from + n);
      ops.push(`copy@${from}->${to}x${n}`);
    } else {
      const len = int(bytes.length);
      bytes = bytes.subarray(0, len);
      ops.push(`truncate@${len}`);
    }
  }
  // Usually repair the superblock checksum, so mutations reach past the header checks.
  if (rnd() < 0.85 && bytes.length >= 4096) {
    const bits = bytes[1024 + 12];
    if (bits >= 9 && bits <= 12) {
      writeSuperblockChecksum(bytes, 1 << bits);
      ops.push('crc');
    }
  }
  return { bytes, what: ops.join(',') };
}

function run(input: FuzzInput): void {
  const port = parentPort;
  if (!port) throw new Error('fuzz-worker must run in a worker thread');
  const rnd = mulberry32(input.seed);
  const originals = new Map<string, Buffer>();
  for (const set of input.sets) for (const layer of set.layers) originals.set(layer, fs.readFileSync(layer));
  const baseline = new Map<string, Buffer>();
  for (const set of input.sets) baseline.set(set.name, mergeLayers(set.layers.map((p) => ({ path: p }))));
  const refused: Record<string, number> = {};
  let changed = 0;
  const kept: KeptCase[] = [];
  let accepted = 0;
  const scratch = path.join(input.outDir, 'mutated.erofs');
  for (let index = 0; index < input.iterations; index++) {
    const set = input.sets[Math.floor(rnd() * input.sets.length)];
    const victim = Math.floor(rnd() * set.layers.length);
    const { bytes, what } = mutate(originals.get(set.layers[victim]) as Buffer, rnd);
    const mutation = `${set.name} layer ${victim + 1}: ${what}`;
    port.postMessage({ type: 'start', index, mutation } satisfies FuzzMessage);
    fs.writeFileSync(scratch, bytes);
    const layers = set.layers.map((p, i) => (i === victim ? scratch : p));
    let fsmeta: Buffer;
    try {
      fsmeta = mergeLayers(layers.map((p) => ({ path: p })));
    } catch (err) {
      if (err instanceof MergeError) {
        refused[err.code] = (refused[err.code] ?? 0) + 1;
        continue;
      }
      port.postMessage({ type: 'crash', index, mutation, error: (err as Error)?.stack ?? String(err) } satisfies FuzzMessage);
      return;
    }
    accepted++;
    // Only merges the mutation actually changed are worth a kernel mount.
    if (fsmeta.equals(baseline.get(set.name) as Buffer)) continue;
    changed++;
    if (changed % input.keepEvery === 0 && kept.length < input.keepMax) {
      const dir = path.join(input.outDir, `case-${index}`);
      fs.mkdirSync(dir);
      const keptLayer = path.join(dir, `mutated-layer${victim + 1}.erofs`);
      fs.writeFileSync(keptLayer, bytes);
      const fsmetaPath = path.join(dir, 'fsmeta.erofs');
      fs.writeFileSync(fsmetaPath, fsmeta);
      kept.push({ index, set: set.name, layers: layers.map((p) => (p === scratch ? keptLayer : p)), fsmeta: fsmetaPath, mutation });
    }
  }
  port.postMessage({ type: 'done', accepted, changed, refused, kept } satisfies FuzzMessage);
}

if (parentPort && workerData) run(workerData as FuzzInput);
