/**
 * Benchmark of the proxy core alone (no gRPC): Mounts of a container whose
 * backend returns containerd-2.x mounts, for 1, 16 and 128 layers.
 *
 *  - cold (fsmeta): first Mounts on a fresh store; validates the backend's
 *    fsmeta, renders and writes the descriptor;
 *  - cold (merge): first Mounts when the layers arrive without an fsmeta; the
 *    native merge runs too;
 *  - warm: the descriptor exists; median and p99 of 2000 calls (each still
 *    plans the mounts and checks every input file's identity).
 *
 * Layers are real EROFS images (mkfs.erofs from small directories) in a temp
 * dir; the backend is an in-process object, so the figures are the core's own
 * cost. Run: hack/bench-proxy-core
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { Backend } from '../src/backend/backend';
import { mergeLayers } from '../src/merge';
import type { Mount } from '../src/mount';
import { createProxySnapshotter } from '../src/snapshotter/proxy';

function makeLayers(dir: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const src = path.join(dir, `src${i}`, `d${i}`);
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'file'), `layer ${i}\n`.repeat(200));
    const out = path.join(dir, `layer${i}.erofs`);
    execFileSync('mkfs.erofs', ['--quiet', '-Enoinline_data', out, path.dirname(src)], { stdio: 'ignore' });
    return out;
  });
}

function backendReturning(mounts: Mount[]): Backend {
  const unused = () => Promise.reject(new Error('not used by the benchmark'));
  return {
    mounts: async () => structuredClone(mounts),
    prepare: unused, view: unused, commit: unused, remove: unused, stat: unused, update: unused, usage: unused,
    cleanup: async () => {}, close: async () => {},
    // eslint-disable-next-line require-yield
    list: async function* () { throw new Error('not used by the benchmark'); },
  };
}

const overlay: Mount = { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: ['workdir=/w', 'upperdir=/u'] };

function containerMounts(layers: string[], fsmeta?: string): Mount[] {
  if (fsmeta) {
    return [
      { type: 'erofs', source: fsmeta, target: '', options: ['ro', 'loop', ...layers.map((l) => `device=${l}`)] },
      { ...overlay, options: [...overlay.options, 'lowerdir={{ mount 0 }}'] },
    ];
  }
  const lowers = [...layers].reverse().map((l): Mount => ({ type: 'erofs', source: l, target: '', options: ['ro', 'loop'] }));
  const lower = lowers.length === 1 ? '{{ mount 0 }}' : `{{ overlay 0 ${lowers.length - 1} }}`;
  return [...lowers, { ...overlay, options: [...overlay.options, `lowerdir=${lower}`] }];
}

async function measure(dir: string, mounts: Mount[], label: string): Promise<string> {
  const root = fs.mkdtempSync(path.join(dir, 'root-'));
  const logger = pino({ level: 'warn' });
  const proxy = createProxySnapshotter({ root, backend: backendReturning(mounts), profiles: { p: { rewrite: true } }, logger });
  try {
    let t = performance.now();
    await proxy.mounts({}, 'p', 'default/1/c');
    const cold = performance.now() - t;
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      t = performance.now();
      await proxy.mounts({}, 'p', 'default/1/c');
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(3);
    return `${label.padEnd(8)} cold ${cold.toFixed(2).padStart(8)} ms   warm median ${q(0.5)} ms  p99 ${q(0.99)} ms`;
  } finally {
    await proxy.close();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-proxy-core-'));
  try {
    for (const n of [1, 16, 128]) {
      const layers = makeLayers(path.join(dir, `n${n}`), n);
      let fsmeta: string | undefined;
      if (n > 1) {
        fsmeta = path.join(dir, `n${n}`, 'fsmeta.erofs');
        fs.writeFileSync(fsmeta, mergeLayers(layers.map((p) => ({ path: p }))));
      }
      console.log(`${n} layer(s):`);
      console.log('  ' + await measure(dir, containerMounts(layers, fsmeta), n > 1 ? 'fsmeta' : 'single'));
      if (n > 1) console.log('  ' + await measure(dir, containerMounts(layers), 'merge'));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
