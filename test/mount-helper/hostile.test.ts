/**
 * Hostile or broken requests: each is refused with exactly one stderr line
 * naming what is wrong, a non-zero exit, nothing mounted and no loop device.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixture, fixturesDir } from '../support/fixtures';
import {
  CONTRACT,
  VIEW_OPTIONS,
  loopsUnder,
  makeTestRoot,
  mountsUnder,
  privateDirsLeft,
  runHelper,
  sectorsOf,
  settledLoopsUnder,
  writeConfig,
  writeDescriptor,
  type TestRoot,
} from './helpers';

let t: TestRoot;
let outside: string;
before(() => {
  t = makeTestRoot();
  outside = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'evm-outside-')));
});
after(() => {
  t.cleanup();
  fs.rmSync(outside, { recursive: true, force: true });
});

interface Case {
  name: string;
  /** argv after the helper's name; built lazily (paths exist only after before()). */
  args: () => string[];
  stderr: RegExp;
  status?: number;
  env?: () => NodeJS.ProcessEnv;
}

const view = (src: string, target: string, options = VIEW_OPTIONS) => [src, target, '-o', options];
const basicExtents = () => [
  { path: t.basic.fsmeta, sectors: sectorsOf(t.basic.fsmeta), offset: 0 },
  ...t.basic.layers.map((l) => ({ path: l, sectors: sectorsOf(l), offset: 0 })),
];
const descriptor = (name: string, extents: { path: string; sectors: number; offset: number }[]) =>
  writeDescriptor(path.join(t.root, 'vmdk', name), extents);
const container = (extra: string[]) => [t.basic.vmdk, t.dir('target'), '-o', [...CONTRACT, ...extra].join(',')];

const cases: Case[] = [
  {
    name: 'source outside the root',
    args: () => {
      const src = path.join(outside, 'basic.vmdk');
      fs.copyFileSync(t.basic.vmdk, src);
      return view(src, t.dir('target'));
    },
    stderr: /^source ".*evm-outside-.*basic\.vmdk" is outside the trust roots \(.*evm-helper-.* from .*config\.toml\)$/,
  },
  {
    name: 'source that is a symlink out of the root',
    args: () => {
      const real = path.join(outside, 'linked.vmdk');
      fs.copyFileSync(t.basic.vmdk, real);
      const link = path.join(t.root, 'vmdk', 'link.vmdk');
      fs.symlinkSync(real, link);
      return view(link, t.dir('target'));
    },
    stderr: /^source ".*link\.vmdk" \(resolves to ".*evm-outside-.*linked\.vmdk"\) is outside the trust roots/,
  },
  {
    name: '".." in the source path',
    args: () => view(`${t.root}/vmdk/../vmdk/basic.vmdk`, t.dir('target')),
    stderr: /^source ".*\/vmdk\/\.\.\/vmdk\/basic\.vmdk" has a "\.\." component$/,
  },
  { name: 'relative source', args: () => view('vmdk/basic.vmdk', t.dir('target')), stderr: /^source "vmdk\/basic\.vmdk" is not an absolute path$/ },
  {
    name: 'source not named *.vmdk',
    args: () => {
      const src = path.join(t.root, 'vmdk', 'basic.txt');
      fs.copyFileSync(t.basic.vmdk, src);
      return view(src, t.dir('target'));
    },
    stderr: /^source ".*basic\.txt" is not a \*\.vmdk file$/,
  },
  { name: 'unknown option', args: () => view(t.basic.vmdk, t.dir('target'), `${VIEW_OPTIONS},lowerdir=/etc`), stderr: /^unknown option "lowerdir=\/etc"$/ },
  { name: 'unknown flag option', args: () => view(t.basic.vmdk, t.dir('target'), `${VIEW_OPTIONS},bind`), stderr: /^unknown option "bind"$/ },
  { name: 'missing contract option', args: () => view(t.basic.vmdk, t.dir('target'), 'ro,X-vmdk.fs=erofs,X-vmdk.layout=flat'), stderr: /^missing option X-erofs-vmdk\.contract=2$/ },
  { name: 'other contract version', args: () => view(t.basic.vmdk, t.dir('target'), 'ro,X-erofs-vmdk.contract=1'), stderr: /^option X-erofs-vmdk\.contract="1": only contract 2 is supported$/ },
  { name: 'option given twice', args: () => view(t.basic.vmdk, t.dir('target'), `${VIEW_OPTIONS},X-erofs-vmdk.contract=2`), stderr: /^option X-erofs-vmdk\.contract given twice$/ },
  { name: 'unknown argument (-t)', args: () => [...view(t.basic.vmdk, t.dir('target')), '-t', 'erofs'], stderr: /^unknown argument "-t"; usage: / },
  { name: 'a third positional argument', args: () => [...view(t.basic.vmdk, t.dir('target')), 'extra'], stderr: /^expected SRC and TARGET, got 3 positional arguments; usage: / },
  {
    name: 'descriptor whose extent points outside the root',
    args: () => {
      const extents = basicExtents();
      extents[2] = { ...extents[2], path: fixture('basic', 'layer2.erofs') };
      return view(descriptor('outside-extent.vmdk', extents), t.dir('target'));
    },
    stderr: /^extent 3 \(descriptor line 10\) ".*test\/fixtures\/erofs\/basic\/layer2\.erofs" is outside the trust roots/,
  },
  {
    name: 'missing blob',
    args: () => {
      const extents = basicExtents();
      extents[4] = { ...extents[4], path: path.join(t.root, 'layers', 'gone.erofs') };
      return view(descriptor('missing-blob.vmdk', extents), t.dir('target'));
    },
    stderr: /^extent 5 \(descriptor line 12\) ".*layers\/gone\.erofs" does not exist$/,
  },
  {
    name: 'extent longer than its file',
    args: () => {
      const extents = basicExtents();
      extents[1] = { ...extents[1], sectors: extents[1].sectors + 8 };
      return view(descriptor('long-extent.vmdk', extents), t.dir('target'));
    },
    stderr: /^extent 2 \(descriptor line 9\) ".*layer1\.erofs" is 364544 bytes, shorter than its extent \(720 sectors = 368640 bytes\)$/,
  },
  {
    name: 'non-EROFS first extent',
    args: () => {
      const zero = path.join(t.root, 'layers', 'zero.erofs');
      fs.writeFileSync(zero, Buffer.alloc(8192));
      const extents = basicExtents();
      extents[0] = { path: zero, sectors: 16, offset: 0 };
      return view(descriptor('zero-fsmeta.vmdk', extents), t.dir('target'));
    },
    stderr: /^extent 1 \(descriptor line 8\) ".*zero\.erofs" is not an EROFS image \(no magic at byte 1024\)$/,
  },
  {
    name: 'wrong device count (fsmeta with 4 devices, 3 layers)',
    args: () => view(descriptor('three-layers.vmdk', basicExtents().slice(0, 4)), t.dir('target')),
    stderr: /^extent 1 ".*fsmeta\.erofs" declares 4 extra devices but descriptor ".*three-layers\.vmdk" has 3 more extents$/,
  },
  {
    name: 'one-extent descriptor naming an fsmeta',
    args: () => view(descriptor('fsmeta-alone.vmdk', basicExtents().slice(0, 1)), t.dir('target')),
    stderr: /^extent 1 ".*fsmeta\.erofs" declares 4 extra devices but descriptor .* has 0 more extents$/,
  },
  {
    name: 'garbage descriptor text',
    args: () => {
      const src = path.join(t.root, 'vmdk', 'garbage.vmdk');
      fs.writeFileSync(src, 'this is not a descriptor\n\x01\x02');
      return view(src, t.dir('target'));
    },
    stderr: /^descriptor ".*garbage\.vmdk" does not start with "# Disk DescriptorFile"$/,
  },
  {
    name: 'binary descriptor',
    args: () => {
      const src = path.join(t.root, 'vmdk', 'binary.vmdk');
      fs.copyFileSync(t.basic.fsmeta, src);
      return view(src, t.dir('target'));
    },
    stderr: /^descriptor ".*binary\.vmdk" is not a text file \(NUL byte\)$/,
  },
  {
    name: 'descriptor with a ZERO extent',
    args: () => {
      const src = path.join(t.root, 'vmdk', 'zero-extent.vmdk');
      fs.writeFileSync(src, fs.readFileSync(t.basic.vmdk, 'utf8').replace(/^(RW 16 FLAT .*)$/m, '$1\nRW 8 ZERO'));
      return view(src, t.dir('target'));
    },
    stderr: /^descriptor ".*zero-extent\.vmdk" line 9: not an extent line of the form RW <sectors> FLAT "<path>" 0 nor a known header\/DDB line: "RW 8 ZERO"$/,
  },
  {
    name: 'descriptor with a non-zero offset (split extent)',
    args: () => {
      const src = path.join(t.root, 'vmdk', 'offset.vmdk');
      fs.writeFileSync(src, fs.readFileSync(t.basic.vmdk, 'utf8').replace(/(layer1\.erofs") 0$/m, '$1 8'));
      return view(src, t.dir('target'));
    },
    stderr: /^descriptor ".*offset\.vmdk" line 9: not an extent line .*layer1\.erofs\\" 8"$/,
  },
  {
    name: 'target not a directory',
    args: () => {
      const file = path.join(t.root, 'file-target');
      fs.writeFileSync(file, '');
      return view(t.basic.vmdk, file);
    },
    stderr: /^target ".*file-target" is not a directory$/,
  },
  { name: 'missing target', args: () => view(t.basic.vmdk, path.join(t.root, 'no-such-dir')), stderr: /^target ".*no-such-dir" does not exist \(ENOENT\)$/ },
  { name: 'relative target', args: () => view(t.basic.vmdk, 'rootfs'), stderr: /^target "rootfs" is not an absolute path$/ },
  { name: 'upperdir outside the root', args: () => container([`upperdir=${outside}`, `workdir=${t.dir('work')}`]), stderr: /^upperdir ".*evm-outside-[^"]*" is outside the trust roots/ },
  { name: '".." in workdir', args: () => container([`upperdir=${t.dir('upper')}`, `workdir=${t.root}/../${path.basename(t.root)}/w`]), stderr: /^workdir ".*\/\.\.\/.*" has a "\.\." component$/ },
  { name: 'upperdir without workdir', args: () => container([`upperdir=${t.dir('upper')}`]), stderr: /^option upperdir needs workdir$/ },
  {
    name: 'both upperdir and upper-image',
    args: () => container([`upperdir=${t.dir('upper')}`, `workdir=${t.dir('work')}`, `X-erofs-vmdk.upper-image=${t.root}/i.img`, 'X-erofs-vmdk.upper-image-size=67108864', 'X-erofs-vmdk.upper-image-fs=ext4']),
    stderr: /^options upperdir\/workdir and X-erofs-vmdk\.upper-image\* exclude each other$/,
  },
  { name: 'upper image outside the root', args: () => container([`X-erofs-vmdk.upper-image=${outside}/i.img`, 'X-erofs-vmdk.upper-image-size=67108864', 'X-erofs-vmdk.upper-image-fs=ext4']), stderr: /^upper image ".*evm-outside-.*\/i\.img" is outside the trust roots/ },
  { name: 'upper image fs other than ext4', args: () => container([`X-erofs-vmdk.upper-image=${t.root}/i.img`, 'X-erofs-vmdk.upper-image-size=67108864', 'X-erofs-vmdk.upper-image-fs=xfs']), stderr: /^option X-erofs-vmdk\.upper-image-fs="xfs": only ext4 is supported$/ },
  { name: 'upper image size not a number', args: () => container([`X-erofs-vmdk.upper-image=${t.root}/i.img`, 'X-erofs-vmdk.upper-image-size=64M', 'X-erofs-vmdk.upper-image-fs=ext4']), stderr: /^option X-erofs-vmdk\.upper-image-size="64M" is not a positive integer \(bytes\)$/ },
  { name: 'upper image missing its size', args: () => container([`X-erofs-vmdk.upper-image=${t.root}/i.img`, 'X-erofs-vmdk.upper-image-fs=ext4']), stderr: /^missing option X-erofs-vmdk\.upper-image-size/ },
  {
    name: 'malformed config file',
    args: () => view(t.basic.vmdk, t.dir('target')),
    env: () => {
      const bad = path.join(outside, 'bad.toml');
      fs.writeFileSync(bad, 'root = "/x\n[[[');
      return { ...t.env, EROFS_VMDK_CONFIG: bad };
    },
    stderr: /^config .*bad\.toml: not valid TOML: /,
  },
  {
    name: 'config with a wrong type',
    args: () => view(t.basic.vmdk, t.dir('target')),
    env: () => {
      const bad = path.join(outside, 'types.toml');
      writeConfig(bad, t.root, 'host_mount_roots = "/var/lib"\n');
      return { ...t.env, EROFS_VMDK_CONFIG: bad };
    },
    stderr: /^config .*types\.toml: host_mount_roots must be an array of absolute paths$/,
  },
  {
    name: 'config with a relative root',
    args: () => view(t.basic.vmdk, t.dir('target')),
    env: () => {
      const bad = path.join(outside, 'relative.toml');
      fs.writeFileSync(bad, 'root = "var/lib/erofs-vmdk"\n');
      return { ...t.env, EROFS_VMDK_CONFIG: bad };
    },
    stderr: /^config .*relative\.toml: root must be an absolute path, got "var\/lib\/erofs-vmdk"$/,
  },
  {
    name: 'EROFS_VMDK_CONFIG naming a missing file',
    args: () => view(t.basic.vmdk, t.dir('target')),
    env: () => ({ ...t.env, EROFS_VMDK_CONFIG: path.join(outside, 'nope.toml') }),
    stderr: /^config .*nope\.toml: cannot read it \(ENOENT\) \(named by EROFS_VMDK_CONFIG\)$/,
  },
  {
    name: 'default config (no file): the root is /var/lib/erofs-vmdk, so the temp root is not trusted',
    args: () => view(t.basic.vmdk, t.dir('target')),
    env: () => {
      const env = { ...t.env };
      delete env.EROFS_VMDK_CONFIG;
      return env;
    },
    stderr: /^source ".*basic\.vmdk" is outside the trust roots \(\/var\/lib\/erofs-vmdk\)$|^config \/etc\/erofs-vmdk\/config\.toml/,
  },
];

for (const c of cases) {
  test(`refused: ${c.name}`, () => {
    const r = runHelper(c.env ? c.env() : t.env, c.args());
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.endsWith('\n'), true, r.stderr);
    assert.equal(r.stderr.split('\n').length, 2, `exactly one line: ${JSON.stringify(r.stderr)}`);
    assert.ok(r.stderr.startsWith('erofs-vmdk-mount: '), r.stderr);
    assert.match(r.stderr.slice('erofs-vmdk-mount: '.length, -1), c.stderr);
    assert.equal(r.status, c.status ?? 2);
    assert.deepEqual(mountsUnder(t.root), []);
    assert.deepEqual(loopsUnder(t.root), []);
    assert.deepEqual(loopsUnder(fixturesDir), []);
    assert.deepEqual(privateDirsLeft(t.root), []);
  });
}

test('host_mount_roots: a blob in another configured root is trusted', async () => {
  const other = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'evm-other-root-')));
  try {
    const blob = path.join(other, 'single.erofs');
    fs.copyFileSync(t.single.layer, blob);
    const src = writeDescriptor(path.join(t.root, 'vmdk', 'other-root.vmdk'), [{ path: blob, sectors: sectorsOf(blob), offset: 0 }]);
    const target = t.dir('target');
    const refused = runHelper(t.env, view(src, target));
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /extent 1 .* is outside the trust roots/);
    const config = path.join(t.root, 'two-roots.toml');
    writeConfig(config, t.root, `host_mount_roots = [${JSON.stringify(other)}]\n[embedded]\nmount_style = "manager"\n`);
    const r = runHelper({ ...t.env, EROFS_VMDK_CONFIG: config }, view(src, target));
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.deepEqual(mountsUnder(t.root), [target]);
    assert.ok(fs.readdirSync(target).length > 0);
    execFileSync('umount', [target]);
    assert.deepEqual(await settledLoopsUnder(other), []);
  } finally {
    fs.rmSync(other, { recursive: true, force: true });
  }
});
