/**
 * Latency figures of the embedded backend, straight on the Backend (no gRPC):
 * Prepare, Commit with a 50 MiB directory to convert (mkfs.erofs), and
 * Stat / List with 1k snapshots in the database. Prints a table; the target
 * "List of 1k snapshots < 100 ms" is reported as met or not (no assertion).
 *
 *   hack/bench-backend [--snapshots N] [--commit-mib M] [--style legacy|manager]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { createEmbeddedBackend, unmountLegacyLayers } from '../src/backend/embedded';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `n=${s.length} median=${q(0.5).toFixed(2)}ms p99=${q(0.99).toFixed(2)}ms max=${s[s.length - 1].toFixed(2)}ms`;
}

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

function fillDir(dir: string, mib: number): void {
  // 50 files of 1 MiB of non-repeating data per 50 MiB, in a few sub-directories.
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j);
    const sub = path.join(dir, `d${i % 5}`);
    fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}`), chunk);
  }
}

async function main(): Promise<void> {
  const count = Number(arg('snapshots', '1000'));
  const mib = Number(arg('commit-mib', '50'));
  const style = arg('style', 'legacy') as 'legacy' | 'manager';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-backend-'));
  const root = path.join(tmp, 'root');
  const backend = await createEmbeddedBackend({ root, mountStyle: style, logger: pino({ level: 'silent' }) });
  const ctx = { namespace: 'bench' };
  try {
    const prepares: number[] = [];
    for (let i = 0; i < count; i++) {
      const [, ms] = await time(() => backend.prepare(ctx, `bench/${i}/active`, '', { 'containerd.io/gc.root': 'x', i: String(i) }));
      prepares.push(ms);
    }
    const commits: number[] = [];
    for (let i = 0; i < 3; i++) {
      const key = `bench/commit-${i}`;
      const mounts = await backend.prepare(ctx, key, '', {});
      fillDir(mounts[0].source, mib);
      const [, ms] = await time(() => backend.commit(ctx, `bench/committed-${i}`, key, {}, ''));
      commits.push(ms);
    }
    const statSamples: number[] = [];
    for (let i = 0; i < count; i++) {
      const [, ms] = await time(() => backend.stat(ctx, `bench/${i}/active`));
      statSamples.push(ms);
    }
    const lists: number[] = [];
    let listed = 0;
    for (let i = 0; i < 20; i++) {
      const [n, ms] = await time(async () => {
        let n = 0;
        for await (const _ of backend.list(ctx, [])) n++;
        return n;
      });
      listed = n;
      lists.push(ms);
    }
    const filtered: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [, ms] = await time(async () => {
        for await (const _ of backend.list(ctx, ['kind==committed', 'labels.i==500'])) void _;
      });
      filtered.push(ms);
    }
    const listMedian = [...lists].sort((a, b) => a - b)[Math.floor(lists.length / 2)];
    process.stdout.write(
      [
        `embedded backend (${style} style), ${count} snapshots, root on ${root}`,
        `Prepare (parentless)        ${stats(prepares)}`,
        `Commit (${mib} MiB to convert) ${stats(commits)}`,
        `Stat                        ${stats(statSamples)}`,
        `List all (${listed} snapshots)  ${stats(lists)}`,
        `List filtered               ${stats(filtered)}`,
        `target: List of 1k snapshots < 100 ms: ${listMedian < 100 ? 'met' : 'NOT met'} (median ${listMedian.toFixed(2)} ms)`,
        '',
      ].join('\n'),
    );
  } finally {
    await backend.close();
    unmountLegacyLayers(root);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench-backend: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
