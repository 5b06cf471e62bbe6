/**
 * Fuzz: thousands of randomly mutated layer images (seeded, reproducible) go
 * through the reader and the merge. The merge must either refuse with a
 * MergeError or produce an image; any other exception is a crash, and a case
 * that stops making progress is a hang (the worker is killed and the test
 * fails naming the mutation). A sample of the produced images whose tree the
 * mutation changed is mounted: it must list exactly what overlayfs shows over
 * the same mutated layers (the first few also as a flat image).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fixture } from '../support/fixtures';
import { listErofsImage, listFlatDescriptor, listMultiDevice, listOverlay, makeTempDir } from '../support/kernel-mounts';
import { mergeLayersWithLayout } from '../../src/merge';
import { writeDescriptor } from './support/oracle';
import { buildLayer } from './support/build-layer';
import type { FuzzInput, FuzzMessage, KeptCase } from './support/fuzz-worker';

const ITERATIONS = 3000;
const SEED = 20261127;
/** No single case may take this long; real cases take milliseconds. */
const HANG_MS = 60_000;
/** How many of the mounted cases are also checked as a flat image (qemu-img convert of a descriptor). */
const FLAT_SAMPLE = 6;

function runWorker(input: FuzzInput): Promise<Extract<FuzzMessage, { type: 'done' }>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'support', 'fuzz-worker.js'), { workerData: input });
    let current = 'before the first case';
    let timer: NodeJS.Timeout;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`hang: no progress for ${HANG_MS} ms in case ${current}`));
      }, HANG_MS);
    };
    arm();
    worker.on('message', (m: FuzzMessage) => {
      if (m.type === 'start') {
        current = `#${m.index} (${m.mutation})`;
        arm();
      } else if (m.type === 'crash') {
        clearTimeout(timer);
        void worker.terminate();
        reject(new Error(`crash in case #${m.index} (${m.mutation}): ${m.error}`));
      } else {
        clearTimeout(timer);
        void worker.terminate();
        resolve(m);
      }
    });
    worker.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * overlayfs lists a whiteout that sits in a directory only one layer has (it
 * iterates such a directory directly) but cannot look it up, so its listing
 * fails there. That is a kernel-defined overlay artefact (see docs/merge.md):
 * the merged image omits the whiteout. Recognised by the path being a char
 * device 0:0 in one of the layers.
 */
async function isWhiteoutArtefact(error: Error, layers: string[]): Promise<boolean> {
  const m = /No such file or directory: b'[^']*\/merged\/([^']+)'/.exec(error.message);
  if (!m) return false;
  for (const layer of layers) {
    const line = (await listErofsImage(layer)).split('\n').find((l) => l.startsWith(`${m[1]}\t`));
    if (line && line.split('\t')[1] === 'c' && line.split('\t')[8] === '0:0') return true;
  }
  return false;
}

test(`fuzz: ${ITERATIONS} mutated layer sets never crash or hang the merge, and accepted ones mount as overlayfs shows them`, { timeout: 600_000 }, async () => {
  const work = makeTempDir('erofs-vmdk-fuzz-');
  try {
    const small = [
      buildLayer(work, 'fz1', {
        'a/b': { type: 'file', size: 5000, xattrs: { 'user.x': '1' } },
        'a/c': { type: 'symlink', target: 'b' },
        'd/e': { type: 'file', size: 10 },
        'd/f': { type: 'hardlink', to: 'd/e' },
        'd/s1': { type: 'file', size: 1, xattrs: { 'user.shared': 'v' } },
        'd/s2': { type: 'file', size: 2, xattrs: { 'user.shared': 'v' } },
        'd/s3': { type: 'file', size: 3, xattrs: { 'user.shared': 'v' } },
      }),
      buildLayer(
        work,
        'fz2',
        { 'a/b': { type: 'whiteout' }, 'a/t': { type: 'file', size: 4097 }, d: { type: 'dir', opaque: true }, 'd/g': { type: 'file', size: 3 } },
        { inlineData: true, fixedTime: 1700000000 },
      ),
    ];
    const chunked = [
      buildLayer(work, 'fz3', { 'd/a': { type: 'file', size: 20000 }, zeros: { type: 'file', content: Buffer.alloc(30000) } }, { extraArgs: ['--chunksize=4096'] }),
      buildLayer(work, 'fz4', { 'd/b': { type: 'file', size: 4097 }, zeros: { type: 'whiteout' } }),
    ];
    const sets = [
      { name: 'basic', layers: [1, 2, 3, 4].map((i) => fixture('basic', `layer${i}.erofs`)) },
      { name: 'taridx', layers: [1, 2, 3, 4].map((i) => fixture('taridx', `layer${i}.erofs`)) },
      { name: 'mkfs-1.5', layers: small },
      { name: 'mkfs-1.5-chunked', layers: chunked },
    ];
    const done = await runWorker({ sets, iterations: ITERATIONS, seed: SEED, outDir: work, keepEvery: 4, keepMax: 20 });
    const refusals = Object.values(done.refused).reduce((a, b) => a + b, 0);
    assert.equal(done.accepted + refusals, ITERATIONS);
    assert.ok(refusals > ITERATIONS / 20, `mutations are refused too (${JSON.stringify(done.refused)})`);
    assert.ok(done.kept.length >= 10, `enough changed-but-accepted merges to mount (${done.kept.length})`);
    const differences: string[] = [];
    let artefacts = 0;
    let flatChecked = 0;
    for (const k of done.kept as KeptCase[]) {
      let oracle: string;
      try {
        oracle = await listOverlay(k.layers);
      } catch (err) {
        if (await isWhiteoutArtefact(err as Error, k.layers)) {
          artefacts++;
          continue;
        }
        differences.push(`#${k.index} (${k.mutation}): we merged it, but overlayfs cannot list it: ${(err as Error).message.split('\n').slice(-2).join(' ')}`);
        continue;
      }
      const ours = await listMultiDevice(k.fsmeta, k.layers);
      if (ours !== oracle) differences.push(`#${k.index} (${k.mutation}): merged listing differs from overlayfs`);
      if (flatChecked < FLAT_SAMPLE) {
        flatChecked++;
        const result = mergeLayersWithLayout(k.layers.map((p) => ({ path: p })));
        const flat = await listFlatDescriptor(writeDescriptor(result, k.fsmeta, `${k.fsmeta}.vmdk`));
        if (flat !== oracle) differences.push(`#${k.index} (${k.mutation}): flat image listing differs from overlayfs`);
      }
    }
    assert.deepEqual(differences, []);
    assert.ok(artefacts < done.kept.length, 'most sampled cases are compared in full');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
