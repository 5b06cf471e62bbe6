/**
 * Benchmark of the native merge (mergeLayers): wall time and peak RSS for
 *   - 10 layers with 50,000 inodes in total (5,000 per layer, shared directories,
 *     some overwrites and whiteouts), and
 *   - 130 small layers.
 * Layers are built once with mkfs.erofs -Enoinline_data; each measurement runs in
 * a fresh Node process (so its peak RSS is the merge's, plus Node's baseline)
 * and repeats the merge to show the cold and the warm time.
 *
 * Usage: hack/bench-merge [--work DIR] [--runs N] [--rt]   (run as root; needs mkfs.erofs)
 *   --rt  run each measurement under `chrt -f 10` (SCHED_FIFO), so a machine busy with
 *         other work still gives idle-machine wall times
 *        node dist/hack/bench-merge.js --measure LAYERS.json RUNS   (internal)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mergeLayers } from '../src/merge';
import { buildLayer, type LayerTree } from '../test/merge/support/build-layer';

const DIRS = 50;
const FILES_PER_DIR = 99;

/** Layer k of the big set: DIRS directories shared by all layers, FILES_PER_DIR new files in each. */
function bigLayer(k: number): LayerTree {
  const tree: LayerTree = {};
  for (let d = 0; d < DIRS; d++) {
    tree[`d${d}`] = { type: 'dir', mtime: 1700000000 + k };
    for (let f = 0; f < FILES_PER_DIR; f++) {
      tree[`d${d}/l${k}-file-${f}`] = { type: 'file', content: `layer ${k} dir ${d} file ${f}\n`, mtime: 1700000000 + k };
    }
    // every layer above the first hides one file of the layer below and overwrites another
    if (k > 0) {
      tree[`d${d}/l${k - 1}-file-0`] = { type: 'whiteout' };
      tree[`d${d}/l${k - 1}-file-1`] = { type: 'file', content: 'overwritten\n' };
    }
  }
  return tree;
}

function smallLayer(k: number): LayerTree {
  return {
    [`f${k}`]: { type: 'file', size: 100 + k },
    common: { type: 'file', size: k + 1 },
    [`dir/s${k}`]: { type: 'file', size: 10 },
  };
}

function buildSets(work: string): Record<string, string[]> {
  const sets: Record<string, string[]> = {};
  const cached = (name: string, count: number, tree: (k: number) => LayerTree): string[] => {
    const dir = path.join(work, name);
    const layers = Array.from({ length: count }, (_, k) => path.join(dir, `layer${k}.erofs`));
    if (layers.every((l) => fs.existsSync(l))) return layers;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    return Array.from({ length: count }, (_, k) => buildLayer(dir, `layer${k}`, tree(k)));
  };
  sets['10 layers, 50,000 inodes'] = cached('big', 10, bigLayer);
  sets['130 small layers'] = cached('small', 130, smallLayer);
  return sets;
}

function countInodes(layers: string[]): number {
  let n = 0;
  for (const layer of layers) {
    const out = execFileSync('dump.erofs', ['-s', layer], { encoding: 'utf8' });
    n += Number(/inode count:\s+(\d+)/i.exec(out)?.[1] ?? 0);
  }
  return n;
}

function measure(listFile: string, runs: number): void {
  const layers = (JSON.parse(fs.readFileSync(listFile, 'utf8')) as string[]).map((p) => ({ path: p }));
  const times: number[] = [];
  const cpu: number[] = [];
  let size = 0;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    size = mergeLayers(layers).length;
    const used = process.cpuUsage(cpuStart);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    cpu.push((used.user + used.system) / 1000);
  }
  process.stdout.write(`${JSON.stringify({ times, cpu, size, maxRssKb: process.resourceUsage().maxRSS })}\n`);
}

function main(argv: string[]): void {
  if (argv[0] === '--measure') {
    measure(argv[1], Number(argv[2]));
    return;
  }
  let work = path.join(os.tmpdir(), 'erofs-vmdk-bench-merge');
  let runs = 5;
  let realtime = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--work') work = argv[++i];
    else if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--rt') realtime = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  fs.mkdirSync(work, { recursive: true });
  const baseline = JSON.parse(
    execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify({maxRssKb: process.resourceUsage().maxRSS}))'], { encoding: 'utf8' }),
  ) as { maxRssKb: number };
  console.log(`node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}; an empty node process peaks at ${(baseline.maxRssKb / 1024).toFixed(1)} MB RSS`);
  console.log(
    `load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; measuring ${realtime ? 'under chrt -f 10 (SCHED_FIFO)' : 'at normal priority'}` +
      ' (CPU time includes V8 GC helper threads)',
  );
  for (const [name, layers] of Object.entries(buildSets(work))) {
    const listFile = path.join(work, `${name.replace(/[^a-z0-9]+/gi, '-')}.json`);
    fs.writeFileSync(listFile, JSON.stringify(layers));
    const command = [process.execPath, __filename, '--measure', listFile, String(runs)];
    if (realtime) command.unshift('chrt', '-f', '10');
    const r = JSON.parse(execFileSync(command[0], command.slice(1), { encoding: 'utf8' })) as {
      times: number[];
      cpu: number[];
      size: number;
      maxRssKb: number;
    };
    const sorted = [...r.times].sort((a, b) => a - b);
    console.log(
      `${name}: ${countInodes(layers)} inodes in ${layers.length} layers -> fsmeta ${(r.size / 1024).toFixed(0)} KiB; ` +
        `mergeLayers first run ${r.times[0].toFixed(0)} ms (CPU ${r.cpu[0].toFixed(0)} ms), median of ${runs} ${sorted[Math.floor(runs / 2)].toFixed(0)} ms; ` +
        `peak RSS ${(r.maxRssKb / 1024).toFixed(1)} MB`,
    );
  }
}

main(process.argv.slice(2));
