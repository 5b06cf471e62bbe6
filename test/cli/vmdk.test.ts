/**
 * `erofs-vmdk vmdk` end to end: the real CLI, then the VM's data path —
 * qemu-img reads the descriptor, the raw disk is loop-mounted as EROFS with no
 * device= options, and the tree must equal the case's overlay oracle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fixture } from '../support/fixtures';
import { listFlatDescriptor, withTempDir } from '../support/kernel-mounts';
import { runCli } from './run-cli';

function layersOf(c: string): string[] {
  return fs.readFileSync(fixture(c, 'layers.txt'), 'utf8').trim().split('\n').map((l) => fixture(c, l.trim()));
}
const deviceArgs = (layers: string[]) => layers.flatMap((l) => ['--device', l]);

function qemuImgInfo(descriptor: string): { format: string; 'virtual-size': number } {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', descriptor], { encoding: 'utf8' }));
}

/** Exit 2, exactly one line on stderr naming `names`, nothing written. */
function assertRefused(r: { status: number | null; stdout: string; stderr: string }, dir: string, pattern: RegExp): void {
  assert.equal(r.status, 2, `stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^erofs-vmdk vmdk: /);
  assert.match(lines[0], pattern);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'in'), [], 'nothing may be written');
}

const cases: { name: string; repaired: boolean }[] = [
  { name: 'basic', repaired: false },
  { name: 'wrong-uniaddr', repaired: true },
  { name: 'mixedbs', repaired: true },
  { name: 'taridx', repaired: true },
];

for (const c of cases) {
  test(`${c.name}: descriptor mounts flat with exactly the expected tree${c.repaired ? ' (fsmeta repaired into a copy)' : ''}`, async () => {
    await withTempDir(async (dir) => {
      const out = path.join(dir, 'disk.vmdk');
      const state = path.join(dir, 'state');
      const fsmeta = fixture(c.name, 'fsmeta.erofs');
      const before = fs.readFileSync(fsmeta);
      const r = runCli(['vmdk', '--fsmeta', fsmeta, ...deviceArgs(layersOf(c.name)), '--out', out, '--state-dir', state, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const result = JSON.parse(r.stdout);
      assert.equal(result.repaired, c.repaired);
      assert.equal(result.extents.length, layersOf(c.name).length + 1);
      if (c.repaired) {
        assert.ok(result.problems.length > 0);
        assert.equal(path.dirname(result.fsmeta), fs.realpathSync(state));
      } else {
        assert.equal(fs.existsSync(state), false);
      }
      assert.deepEqual(fs.readFileSync(fsmeta), before, 'input fsmeta untouched');
      const info = qemuImgInfo(out);
      assert.equal(info.format, 'vmdk');
      assert.equal(info['virtual-size'], result.sectors * 512);
      assert.equal(await listFlatDescriptor(out), fs.readFileSync(fixture(c.name, 'expected.tsv'), 'utf8'));
      // our own descriptor lints clean, including the device-table layout check
      const inspect = runCli(['inspect', out]);
      assert.equal(inspect.status, 0, inspect.stdout + inspect.stderr);
    });
  });
}

test('wrong-uniaddr: the repaired copy is byte-identical to basic/fsmeta.erofs; a rerun is idempotent', async () => {
  await withTempDir((dir) => {
    const args = ['vmdk', '--fsmeta', fixture('wrong-uniaddr', 'fsmeta.erofs'), ...deviceArgs(layersOf('wrong-uniaddr')), '--out', path.join(dir, 'd.vmdk'), '--json'];
    const first = runCli(args);
    assert.equal(first.status, 0, first.stderr);
    const copy = JSON.parse(first.stdout).fsmeta;
    assert.deepEqual(fs.readFileSync(copy), fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
    const text = fs.readFileSync(path.join(dir, 'd.vmdk'), 'utf8');
    const second = runCli(args);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).fsmeta, copy);
    assert.equal(fs.readFileSync(path.join(dir, 'd.vmdk'), 'utf8'), text);
    assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(copy), 'd.vmdk'].sort()); // default state dir = next to --out
  });
});

test('single: --layer alone gives a one-extent descriptor of that layer', async () => {
  await withTempDir(async (dir) => {
    const out = path.join(dir, 'single.vmdk');
    const r = runCli(['vmdk', '--layer', fixture('single', 'layer1.erofs'), '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^wrote .*single\.vmdk: 1 extents, 64 sectors/);
    assert.match(fs.readFileSync(out, 'utf8'), new RegExp(`^RW 64 FLAT "${fs.realpathSync(fixture('single', 'layer1.erofs'))}" 0$`, 'm'));
    assert.equal(qemuImgInfo(out)['virtual-size'], 32768);
    assert.equal(await listFlatDescriptor(out), fs.readFileSync(fixture('single', 'expected.tsv'), 'utf8'));
  });
});

test('mixedbs-bottom512: refused (layer block size below the fsmeta), nothing written', async () => {
  await withTempDir((dir) => {
    const r = runCli(['vmdk', '--fsmeta', fixture('mixedbs-bottom512', 'fsmeta.erofs'), ...deviceArgs(layersOf('mixedbs-bottom512')), '--out', path.join(dir, 'd.vmdk')]);
    assertRefused(r, dir, /mixedbs-bottom512\/layer1\.erofs: block size 512 is smaller than the fsmeta's 4096/);
  });
});

test('--split-2g writes the split form (a small disk stays one line per file)', async () => {
  await withTempDir((dir) => {
    const out = path.join(dir, 'd.vmdk');
    const r = runCli(['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs'), ...deviceArgs(layersOf('basic')), '--out', out, '--split-2g']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.startsWith('RW ')).length, 5);
  });
});

const basicLayers = layersOf('basic');
const badFsmeta: [string, RegExp][] = [
  ['truncated-sb.erofs', /truncated-sb\.erofs: 1100 bytes, too short for an EROFS superblock/],
  ['truncated-devtable.erofs', /truncated-devtable\.erofs: .*(checksum|device table)/],
  ['bad-magic.erofs', /bad-magic\.erofs: not an EROFS image \(magic 0xe0f5e1e3/],
  ['bad-checksum.erofs', /bad-checksum\.erofs: superblock checksum 0x64d4e53c does not match the content \(0x1bc52bad\)/],
  ['extra-devices-3.erofs', /extra-devices-3\.erofs: device table has 3 slots, but 4 layer files were given/],
  ['extra-devices-5.erofs', /extra-devices-5\.erofs: .*(5 slots|overlap the root inode)/],
  ['48bit.erofs', /48bit\.erofs: incompat feature 48BIT/],
];

for (const [name, pattern] of badFsmeta) {
  test(`bad-inputs/${name}: exit 2, one precise line, no output`, async () => {
    await withTempDir((dir) => {
      const r = runCli(['vmdk', '--fsmeta', fixture('bad-inputs', name), ...deviceArgs(basicLayers), '--out', path.join(dir, 'd.vmdk'), '--state-dir', path.join(dir, 'state')]);
      assertRefused(r, dir, pattern);
    });
  });
}

test('basic fsmeta with 3 of its 4 layers: device count mismatch', async () => {
  await withTempDir((dir) => {
    const r = runCli(['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs'), ...deviceArgs(basicLayers.slice(0, 3)), '--out', path.join(dir, 'd.vmdk')]);
    assertRefused(r, dir, /basic\/fsmeta\.erofs: device table has 4 slots, but 3 layer files were given/);
  });
});

test('hostile layer names from make-injection-names.sh are refused, never escaped', async () => {
  await withTempDir((dir) => {
    const inj = path.join(dir, 'in');
    execFileSync('bash', [fixture('bad-inputs', 'make-injection-names.sh'), inj]);
    const names = fs.readdirSync(inj);
    const quote = path.join(inj, names.find((n) => n === 'layer"2.erofs')!);
    const newline = path.join(inj, names.find((n) => n === 'layer\n3.erofs')!);
    const smuggle = path.join(inj, names.find((n) => n.startsWith('layer4.erofs"'))!);
    const fsmeta = path.join(inj, 'fsmeta.erofs');
    const l1 = path.join(inj, 'layer1.erofs');
    const cases: [string[], RegExp][] = [
      [[l1, quote, basicLayers[2], basicLayers[3]], /layer 2: path ".*layer\\"2\.erofs" contains a double quote/],
      [[l1, basicLayers[1], newline, basicLayers[3]], /layer 3: path ".*layer\\n3\.erofs" contains a CR or LF/],
      [[l1, basicLayers[1], basicLayers[2], smuggle], /layer 4: path ".*layer4\.erofs\\" 0\\nRW 8 FLAT \\"evil\.erofs" contains a double quote/],
    ];
    for (const [layers, pattern] of cases) {
      const r = runCli(['vmdk', '--fsmeta', fsmeta, ...deviceArgs(layers), '--out', path.join(dir, 'd.vmdk')]);
      assertRefused(r, dir, pattern);
    }
  });
});

test('a layer path with a space, a missing layer, a short layer: exit 2 naming the file', async () => {
  await withTempDir((dir) => {
    const inputs = path.join(dir, 'in');
    fs.mkdirSync(inputs);
    const spaced = path.join(inputs, 'layer 4.erofs');
    fs.copyFileSync(basicLayers[3], spaced);
    const short = path.join(inputs, 'short4.erofs');
    fs.writeFileSync(short, fs.readFileSync(basicLayers[3]).subarray(0, 4096));
    const fsmeta = fixture('basic', 'fsmeta.erofs');
    const out = ['--out', path.join(dir, 'd.vmdk')];
    assertRefused(runCli(['vmdk', '--fsmeta', fsmeta, ...deviceArgs([...basicLayers.slice(0, 3), spaced]), ...out]), dir, /layer 4: path ".*layer 4\.erofs" contains whitespace/);
    assertRefused(runCli(['vmdk', '--fsmeta', fsmeta, ...deviceArgs([...basicLayers.slice(0, 3), path.join(inputs, 'gone.erofs')]), ...out]), dir, /gone\.erofs": layer 4: no such file/);
    assertRefused(runCli(['vmdk', '--fsmeta', fsmeta, ...deviceArgs([...basicLayers.slice(0, 3), short]), ...out]), dir, /short4\.erofs: 4096 bytes, but the superblock says 3 blocks of 4096 \(12288 bytes\)$/);
    assertRefused(runCli(['vmdk', '--layer', path.join(inputs, 'gone.erofs'), ...out]), dir, /gone\.erofs": layer 1: no such file/);
  });
});

test('a symlinked layer is written as its resolved target', async () => {
  await withTempDir((dir) => {
    const link = path.join(dir, 'link-to-layer4');
    fs.symlinkSync(basicLayers[3], link);
    const out = path.join(dir, 'd.vmdk');
    const r = runCli(['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs'), ...deviceArgs([...basicLayers.slice(0, 3), link]), '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const text = fs.readFileSync(out, 'utf8');
    assert.ok(text.includes(`RW 24 FLAT "${fs.realpathSync(basicLayers[3])}" 0\n`));
    assert.ok(!text.includes('link-to-layer4'));
  });
});

// Tar-index layers matter here: the native merge addresses each whole layer
// file (index + tar), unlike mkfs.erofs's tar-relative slots, and the validator
// must accept that form as it is instead of "repairing" it into the other one.
for (const c of ['basic', 'taridx']) {
  test(`${c}: several --layer without fsmeta: native merge into the state dir, no repair, a disk with the oracle tree`, async () => {
    await withTempDir(async (dir) => {
      const layers = layersOf(c);
      const out = path.join(dir, 'd.vmdk');
      const state = path.join(dir, 'state');
      const r = runCli(['vmdk', ...layers.flatMap((l) => ['--layer', l]), '--out', out, '--state-dir', state, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const result = JSON.parse(r.stdout);
      assert.equal(result.merged, true);
      assert.equal(result.repaired, false, JSON.stringify(result.problems));
      assert.deepEqual(result.problems, []);
      assert.equal(path.dirname(result.fsmeta), fs.realpathSync(state));
      assert.deepEqual(result.extents.slice(1).map((e: { path: string }) => e.path), layers.map((l) => fs.realpathSync(l)));
      assert.equal(await listFlatDescriptor(out), fs.readFileSync(fixture(c, 'expected.tsv'), 'utf8'));
    });
  });
}

test('several --layer: a damaged merged fsmeta at its content-addressed name is rewritten, not trusted', async () => {
  await withTempDir(async (dir) => {
    const layers = layersOf('basic');
    const out = path.join(dir, 'd.vmdk');
    const state = path.join(dir, 'state');
    const args = ['vmdk', ...layers.flatMap((l) => ['--layer', l]), '--out', out, '--state-dir', state, '--json'];
    const first = runCli(args);
    assert.equal(first.status, 0, first.stderr);
    const fsmeta = JSON.parse(first.stdout).fsmeta as string;
    const good = fs.readFileSync(fsmeta);
    fs.truncateSync(fsmeta, 1000);
    const second = runCli(args);
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(fs.readFileSync(fsmeta), good);
    assert.equal(await listFlatDescriptor(out), fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8'));
  });
});

test('several --layer with a hostile name: refused before merging, nothing written', async () => {
  await withTempDir((dir) => {
    const bad = path.join(dir, 'in', 'lay"er.erofs');
    fs.mkdirSync(path.dirname(bad));
    fs.copyFileSync(basicLayers[1], bad);
    const r = runCli(['vmdk', '--layer', basicLayers[0], '--layer', bad, '--out', path.join(dir, 'd.vmdk'), '--state-dir', path.join(dir, 'state')]);
    assertRefused(r, dir, /layer 2: path ".*lay\\"er\.erofs" contains a double quote/);
  });
});

test('usage errors exit 2 with one line', async () => {
  await withTempDir((dir) => {
    assertRefused(runCli(['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs')]), dir, /--out is required/);
    assertRefused(runCli(['vmdk', '--fsmeta', fixture('basic', 'fsmeta.erofs'), '--out', path.join(dir, 'x.vmdk')]), dir, /--fsmeta needs at least one --device/);
    assertRefused(runCli(['vmdk', '--bogus', '--out', path.join(dir, 'x.vmdk')]), dir, /bogus/);
    assertRefused(runCli(['vmdk', '--layer', basicLayers[0], '--out', path.join(dir, 'no', 'such', 'd.vmdk')]), dir, /directory .* does not exist/);
  });
});
