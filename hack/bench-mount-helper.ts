/**
 * Benchmark: what erofs-vmdk-mount costs on a container start.
 *
 * In one run, N iterations each, interleaved (so load changes hit every figure alike):
 *  - `node -e 0`: the price of starting Node at all, the floor of any Node helper;
 *  - the helper mounting a VIEW of the 4-layer fixture (fsmeta + 4 layer loops);
 *  - the helper mounting a directory-mode CONTAINER (EROFS on a private dir, overlay on TARGET,
 *    private mount lazily detached), and a block-mode one (1 GiB ext4 image, made by the warm-up);
 *  - the same container through the real dispatch, `mount.fuse3 … -t erofs-vmdk-mount`;
 *  - a bare `mount -t erofs -o ro,loop LAYER DIR` of one layer: the kernel + util-linux floor.
 * Each figure is one child process, timed from spawn to exit. The unmount that follows each
 * mount is timed separately (`umount TARGET`, what the caller pays). Median and p90 are printed,
 * and the helper's cost above `node -e 0` is judged against a 100 ms budget.
 *
 * Run as root: hack/bench-mount-helper [--runs N]   (builds with tsc if needed)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { prepareFlatDisk } from '../src/erofs';
import { renderDescriptor } from '../src/vmdk';

const repo = path.resolve(__dirname, '..', '..');
const helper = path.join(repo, 'bin', 'erofs-vmdk-mount');
const fixture = (f: string) => path.join(repo, 'test', 'fixtures', 'erofs', 'basic', f);
const BUDGET_MS = 100;
const CONTRACT = 'X-erofs-vmdk.contract=2,X-vmdk.fs=erofs,X-vmdk.layout=flat';

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

function stats(samples: number[]): { median: number; p90: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { median: at(0.5), p90: at(0.9) };
}

function main(): void {
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 30;
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark makes real mounts');

  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-mount-helper-')));
  const cleanup: string[] = [];
  try {
    const layersDir = path.join(root, 'layers');
    fs.mkdirSync(layersDir);
    const names = ['fsmeta.erofs', 'layer1.erofs', 'layer2.erofs', 'layer3.erofs', 'layer4.erofs'];
    for (const n of names) fs.copyFileSync(fixture(n), path.join(layersDir, n));
    const [fsmeta, ...layers] = names.map((n) => path.join(layersDir, n));
    const vmdk = path.join(root, 'basic.vmdk');
    fs.writeFileSync(vmdk, renderDescriptor(prepareFlatDisk({ fsmeta, layers }, { repairDir: path.join(root, 'state') }).extents));
    const config = path.join(root, 'config.toml');
    fs.writeFileSync(config, `root = ${JSON.stringify(root)}\n`);
    const env = { ...process.env, EROFS_VMDK_CONFIG: config, PATH: `${path.join(repo, 'bin')}:${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
    const dir = (n: string) => {
      const d = path.join(root, n);
      fs.mkdirSync(d);
      return d;
    };
    const target = dir('target');
    const upper = dir('upper');
    const work = dir('work');
    const containerOpts = `${CONTRACT},upperdir=${upper},workdir=${work}`;
    // Created and formatted by the first (warm-up) run, reused afterwards.
    const blockOpts = `${CONTRACT},X-erofs-vmdk.upper-image=${path.join(root, 'upper.img')},X-erofs-vmdk.upper-image-size=${1 << 30},X-erofs-vmdk.upper-image-fs=ext4`;

    interface Bench {
      name: string;
      run: (push: (ms: number) => void) => void;
      /** Leaves a mount on TARGET, unmounted (and timed) after each run. */
      mounts: boolean;
      mountSamples: number[];
      umountSamples: number[];
    }
    const add = (name: string, run: Bench['run'], mounts: boolean): Bench => ({ name, run, mounts, mountSamples: [], umountSamples: [] });
    const benches = [
      add('node -e 0', (push) => push(timed(process.execPath, ['-e', '0'], env)), false),
      add('helper: view, 4 layers', (push) => push(timed(helper, [vmdk, target, '-o', `ro,${CONTRACT},dev,suid`], env)), true),
      add('helper: container, directory mode', (push) => push(timed(helper, [vmdk, target, '-o', `${containerOpts},dev,suid`], env)), true),
      add('helper: container, block mode (image exists)', (push) => push(timed(helper, [vmdk, target, '-o', `${blockOpts},dev,suid`], env)), true),
      add('mount.fuse3 → helper: container', (push) => {
        const args = [vmdk, target];
        for (const o of containerOpts.split(',')) args.push('-o', o);
        push(timed('mount.fuse3', [...args, '-t', 'erofs-vmdk-mount'], env));
      }, true),
      add('floor: mount -t erofs -o ro,loop (1 layer)', (push) => push(timed('mount', ['-t', 'erofs', '-o', 'ro,loop', layers[0], target], env)), true),
    ];
    cleanup.push(target);

    const warmup = 3;
    for (let i = 0; i < warmup + runs; i++) {
      for (const b of benches) {
        b.run((ms) => {
          if (i >= warmup) b.mountSamples.push(ms);
        });
        if (b.mounts) {
          const u = timed('umount', [target], env);
          if (i >= warmup) b.umountSamples.push(u);
        }
      }
    }

    const leftLoops = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(root));
    const cpu = os.cpus();
    console.log(
      `erofs-vmdk bench-mount-helper: ${runs} runs each (interleaved, ${warmup} warm-up), ms per child process; ` +
        `node ${process.version}, ${cpu[0]?.model ?? 'cpu'} x${cpu.length}, kernel ${os.release()}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    console.log(`${'figure'.padEnd(48)}${'median'.padStart(9)}${'p90'.padStart(9)}${'umount median'.padStart(15)}${'p90'.padStart(9)}`);
    const f = (n: number) => n.toFixed(1).padStart(9);
    for (const b of benches) {
      const m = stats(b.mountSamples);
      const u = b.umountSamples.length ? stats(b.umountSamples) : undefined;
      console.log(`${b.name.padEnd(48)}${f(m.median)}${f(m.p90)}${u ? `${u.median.toFixed(1).padStart(15)}${f(u.p90)}` : ''}`);
    }
    const node = stats(benches[0].mountSamples).median;
    for (const b of benches.filter((x) => x.name.includes('helper'))) {
      const m = stats(b.mountSamples);
      const above = m.median - node;
      console.log(
        `${b.name}: ${above.toFixed(1)} ms above node -e 0 (medians; its p90 − node's median: ${(m.p90 - node).toFixed(1)}) → ` +
          `${above <= BUDGET_MS ? 'within' : 'OVER'} the ${BUDGET_MS} ms budget`,
      );
    }
    if (leftLoops.length) console.log(`WARNING: loop devices left on the benchmark's files: ${leftLoops.join('; ')}`);
  } finally {
    for (const t of cleanup) spawnSync('umount', ['-q', t]);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main();
