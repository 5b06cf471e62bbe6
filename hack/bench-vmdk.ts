/**
 * Benchmark: validate + render a flat descriptor for 1, 16, 128 and 1000 layers.
 *
 * Two measurements per size:
 *  - in-memory: validateFlatLayout over synthetic images held in memory, then
 *    renderDescriptor (the pure core);
 *  - tmpfs: prepareFlatDisk over real files in /dev/shm (realpath, stat, header
 *    reads, CRC checks, validation), then renderDescriptor — what the daemon does.
 * Process start is excluded; each figure is the median of several runs after a
 * warm-up. Targets: < 5 ms at 128 layers, < 30 ms at 1000.
 *
 * Run: hack/bench-vmdk   (builds with tsc if needed)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { prepareFlatDisk, validateFlatLayout, type ImageInput } from '../src/erofs';
import { BS, fsmetaBytes, layerHead } from '../test/erofs/synthetic';
import { renderDescriptor, type Extent } from '../src/vmdk';

interface Timing {
  median: number;
  min: number;
}

function time(runs: number, fn: () => void): Timing {
  for (let i = 0; i < 3; i++) fn(); // warm-up (JIT, page cache)
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)], min: samples[0] };
}

function benchInMemory(n: number): Timing {
  const sizes = Array.from({ length: n }, (_, i) => 1 + (i % 50));
  const fsmeta = fsmetaBytes(sizes);
  const blobs: ImageInput[] = sizes.map((s, i) => ({ file: `/bench/layer${i}.erofs`, size: s * BS, head: layerHead(i, s) }));
  const fsmetaInput: ImageInput = { file: '/bench/fsmeta.erofs', size: fsmeta.length, head: fsmeta };
  return time(20, () => {
    const report = validateFlatLayout(fsmetaInput, blobs);
    if (report.problems.length) throw new Error(report.problems[0].message);
    const layout = report.layout!;
    const extents: Extent[] = [
      { path: fsmetaInput.file, sectors: (layout.primaryBlocks * BS) / 512, offset: 0 },
      ...layout.blobs.map((b) => ({ path: b.file, sectors: b.regionBytes / 512, offset: 0 })),
    ];
    renderDescriptor(extents);
  });
}

function benchTmpfs(n: number, root: string): Timing {
  const dir = fs.mkdtempSync(path.join(root, `n${n}-`));
  const sizes = Array.from({ length: n }, (_, i) => 1 + (i % 50));
  const layers = sizes.map((s, i) => {
    const file = path.join(dir, `layer${i}.erofs`);
    fs.writeFileSync(file, layerHead(i, s));
    fs.truncateSync(file, s * BS); // sparse: the data blocks are never read
    return file;
  });
  const fsmeta = path.join(dir, 'fsmeta.erofs');
  fs.writeFileSync(fsmeta, fsmetaBytes(sizes));
  const repairDir = path.join(dir, 'state');
  return time(20, () => {
    const disk = prepareFlatDisk({ fsmeta, layers }, { repairDir });
    if (disk.repaired) throw new Error('synthetic layout should be clean');
    renderDescriptor(disk.extents);
  });
}

function main(): void {
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const root = fs.mkdtempSync(path.join(shm, 'erofs-vmdk-bench-'));
  try {
    console.log(`erofs-vmdk bench-vmdk: validate + render, ms (median / min of the runs); node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, load ${os.loadavg()[0].toFixed(2)}`);
    console.log('layers  in-memory (median/min)  tmpfs files (median/min)  target');
    for (const n of [1, 16, 128, 1000]) {
      const mem = benchInMemory(n);
      const files = benchTmpfs(n, root);
      const target = n === 128 ? '< 5' : n === 1000 ? '< 30' : '';
      const cell = (t: Timing) => `${t.median.toFixed(3)} / ${t.min.toFixed(3)}`.padStart(24);
      console.log(`${String(n).padStart(6)}  ${cell(mem)}  ${cell(files)}  ${target}`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main();
