/**
 * A FIFO given as a layer or fsmeta must be refused as "not a regular file",
 * never block: open(2) of a FIFO for reading waits for a writer, and the
 * opens are synchronous, so one FIFO in a mount list froze the whole daemon
 * (every RPC, health checks) and the CLI forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixture } from '../support/fixtures';
import { runCliBounded, runScriptBounded, type ChildResult } from './bounded-child';

function withFifo(fn: (dir: string, fifo: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-fifo-'));
  try {
    const fifo = path.join(dir, 'layer.erofs');
    execFileSync('mkfifo', [fifo]);
    fn(dir, fifo);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function assertRefusedQuickly(r: ChildResult, command: string, fifo: string): void {
  assert.equal(r.timedOut, false, `${command} hung on the FIFO`);
  assert.equal(r.status, 2, `stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^erofs-vmdk ${command}: .*${fifo.replace(/[.]/g, '\\.')}.*not a regular file`));
}

const layer = (n: number) => fixture('basic', `layer${n}.erofs`);

test('vmdk --layer FIFO is refused without blocking and writes nothing', () => {
  withFifo((dir, fifo) => {
    const out = path.join(dir, 'out.vmdk');
    assertRefusedQuickly(runCliBounded(['vmdk', '--layer', fifo, '--out', out]), 'vmdk', fifo);
    assert.equal(fs.existsSync(out), false);
  });
});

test('vmdk --fsmeta with a FIFO --device is refused without blocking', () => {
  withFifo((dir, fifo) => {
    const args = ['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs'), '--device', fifo];
    for (const n of [2, 3, 4]) args.push('--device', layer(n));
    assertRefusedQuickly(runCliBounded([...args, '--out', path.join(dir, 'out.vmdk')]), 'vmdk', fifo);
  });
});

test('vmdk with several --layer (native merge) and a FIFO among them is refused without blocking', () => {
  withFifo((dir, fifo) => {
    const r = runCliBounded(['vmdk', '--layer', layer(1), '--layer', fifo, '--out', path.join(dir, 'out.vmdk')]);
    assertRefusedQuickly(r, 'vmdk', fifo);
    assert.deepEqual(fs.readdirSync(dir), ['layer.erofs'], 'no merged fsmeta left behind');
  });
});

test('merge with a FIFO layer is refused without blocking', () => {
  withFifo((dir, fifo) => {
    assertRefusedQuickly(runCliBounded(['merge', '--out', path.join(dir, 'm.erofs'), fifo, layer(1)]), 'merge', fifo);
  });
});

test('inspect of a FIFO is refused without blocking', () => {
  withFifo((_dir, fifo) => {
    assertRefusedQuickly(runCliBounded(['inspect', fifo]), 'inspect', fifo);
  });
});

test('the proxy refuses an upstream erofs mount on a FIFO with FailedPrecondition instead of freezing', () => {
  withFifo((_dir, fifo) => {
    // In a child: a regression blocks its event loop for good, which only a kill ends.
    const helpers = path.join(__dirname, '..', 'snapshotter', 'helpers.js');
    const script = `
      const { startHarness, NS } = require(${JSON.stringify(helpers)});
      const erofs = (s) => ({ type: 'erofs', source: s, target: '', options: ['ro', 'loop'] });
      const overlay = (n) => ({ type: 'format/mkdir/overlay', source: 'overlay', target: '', options: ['lowerdir={{ overlay 0 ' + (n - 1) + ' }}', 'upperdir=/u', 'workdir=/w'] });
      (async () => {
        const h = startHarness();
        const out = [];
        h.backend.overrides.set('erofs-vmdk/single', [erofs(${JSON.stringify(fifo)}), overlay(1)]);
        h.backend.overrides.set('erofs-vmdk/merged', [erofs(${JSON.stringify(layer(1))}), erofs(${JSON.stringify(fifo)}), overlay(2)]);
        for (const key of ['single', 'merged']) {
          try { await h.proxy.prepare(NS, 'erofs-vmdk', key, '', {}); out.push(key + ' accepted'); }
          catch (e) { out.push(key + ' ' + e.kind + ' ' + e.message); }
        }
        await h.close();
        process.stdout.write(JSON.stringify(out));
      })();`;
    const r = runScriptBounded(script);
    assert.equal(r.timedOut, false, 'the proxy hung on the FIFO');
    assert.equal(r.status, 0, r.stderr);
    const lines = JSON.parse(r.stdout) as string[];
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^(single|merged) FailedPrecondition .*not a regular file/);
  });
});
