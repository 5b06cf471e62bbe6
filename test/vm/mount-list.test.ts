/**
 * vm-run accepts only the vmdk mount contract v1 and refuses everything a
 * shim must not boot: descriptors outside the allowed folder, symlinks,
 * missing or short extents, lines QEMU would silently drop, unknown options.
 * No VM is booted here.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { parseMountListJson, planGuest, VMDK_V1_OPTIONS } from '../../hack/vm/mount-list';
import { parseCtrMounts } from '../../hack/vm/mount-source';
import type { Mount } from '../../src/mount/index';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { overlayMount, vmdkMount, vmRun, writeDescriptor } from './vm-harness';

describe('vm-run mount list validation (contract v1)', () => {
  let dir: string;
  let descriptor: string;
  let layers: string[];
  before(() => {
    dir = fs.realpathSync(makeTempDir('erofs-vmdk-vmlist-'));
    // Copies, so tests can truncate and delete extents.
    const basic = fixture('basic');
    for (const f of ['fsmeta.erofs', 'layer1.erofs', 'layer2.erofs', 'layer3.erofs', 'layer4.erofs']) {
      fs.copyFileSync(path.join(basic, f), path.join(dir, f));
    }
    layers = [1, 2, 3, 4].map((n) => path.join(dir, `layer${n}.erofs`));
    descriptor = path.join(dir, 'basic.vmdk');
    writeDescriptor({ fsmeta: path.join(dir, 'fsmeta.erofs'), layers }, descriptor);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A descriptor variant written next to the real one. */
  const variant = (name: string, edit: (text: string) => string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, edit(fs.readFileSync(descriptor, 'utf8')));
    return p;
  };
  const plan = (mounts: Mount[], allowed = [dir]) => planGuest(mounts, allowed);

  it('accepts [vmdk, overlay] and plans a tmpfs upper over the flat disk', () => {
    const p = plan([vmdkMount(descriptor), overlayMount(dir)]);
    assert.equal(p.upper.kind, 'tmpfs');
    assert.equal(p.descriptor.extents.length, 5);
    assert.equal(p.descriptor.extents[0].path, path.join(dir, 'fsmeta.erofs'));
  });

  it('accepts the legacy shape [vmdk, format/overlay] and a read-only view [vmdk, format/bind]', () => {
    const legacy = { ...overlayMount(dir), type: 'format/overlay', options: ['index=off', ...overlayMount(dir).options] };
    assert.deepEqual(plan([vmdkMount(descriptor), legacy]).overlayOptions, ['index=off']);
    const view = plan([vmdkMount(descriptor), { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] }]);
    assert.equal(view.upper.kind, 'none');
  });

  it('accepts block mode [mkfs/ext4, vmdk, overlay] with {{ mount 0 }}/upper', () => {
    const p = plan([
      { type: 'mkfs/ext4', source: path.join(dir, 'rwlayer.img'), target: '', options: ['X-containerd.mkfs.fs=ext4', 'X-containerd.mkfs.size=67108864', 'rw', 'loop'] },
      vmdkMount(descriptor),
      { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: ['workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/upper', 'lowerdir={{ mount 1 }}'] },
    ]);
    assert.deepEqual(p.upper, { kind: 'ext4', image: path.join(dir, 'rwlayer.img'), createSize: 67108864, upperSubdir: 'upper', workSubdir: 'work' });
    assert.equal(p.mkdirUpper, true);
  });

  const refusals: Array<[string, () => Mount[], RegExp]> = [
    ['no vmdk mount (multi-device erofs is not for VMs)', () => [{ type: 'erofs', source: layers[0], target: '', options: ['ro', 'loop'] }, overlayMount(dir)], /exactly one vmdk mount, found 0/],
    ['two vmdk mounts', () => [vmdkMount(descriptor), vmdkMount(descriptor)], /exactly one vmdk mount, found 2/],
    ['an unknown X-vmdk option (a newer contract)', () => [{ ...vmdkMount(descriptor), options: [...VMDK_V1_OPTIONS, 'X-vmdk.version=2'] }, overlayMount(dir)], /X-vmdk\.version=2: not part of the vmdk mount contract v1/],
    ['a writable vmdk', () => [{ ...vmdkMount(descriptor), options: ['rw', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] }], /must be exactly/],
    ['a relative descriptor path', () => [vmdkMount('basic.vmdk')], /not an absolute path/],
    ['a descriptor outside the allowed folders', () => [vmdkMount(fixture('basic', 'merged.vmdk'))], /outside the allowed folders/],
    ['a lowerdir with more than the vmdk mount', () => [vmdkMount(descriptor), { ...overlayMount(dir), options: [`upperdir=${dir}/fs`, `workdir=${dir}/work`, `lowerdir={{ mount 0 }}:${dir}`] }], /must be exactly "\{\{ mount 0 \}\}"/],
    ['idmapped overlay options', () => [vmdkMount(descriptor), { ...overlayMount(dir), options: [...overlayMount(dir).options, 'uidmap=0:1000:1'] }], /uidmap=0:1000:1 is not supported/],
    ['an unknown mount type', () => [vmdkMount(descriptor), { type: 'fuse.whatever', source: 'x', target: '', options: [] }], /not a vmdk contract v1 rootfs shape/],
  ];
  for (const [name, mounts, message] of refusals) {
    it(`refuses ${name}`, () => assert.throws(() => plan(mounts()), message));
  }

  it('refuses a descriptor reached through a symlink', () => {
    const link = path.join(dir, 'link.vmdk');
    fs.symlinkSync(descriptor, link);
    assert.throws(() => plan([vmdkMount(link)]), /goes through a symlink/);
  });

  it('refuses extents QEMU would silently drop or shift (RDONLY, ZERO, short lines)', () => {
    const rdonly = variant('rdonly.vmdk', (t) => t.replace(/^RW (\d+) FLAT "([^"]*layer2[^"]*)"/m, 'RDONLY $1 FLAT "$2"'));
    assert.throws(() => plan([vmdkMount(rdonly)]), /line \d+: not an "RW <sectors> FLAT/);
    const zero = variant('zero.vmdk', (t) => t.replace(/^(RW \d+ FLAT "[^"]*layer4[^"]*" 0)$/m, '$1\nRW 8 ZERO'));
    assert.throws(() => plan([vmdkMount(zero)]), /not an "RW <sectors> FLAT/);
  });

  it('re-checks every extent: missing, outside the allowed folder, or shorter than mapped', () => {
    const missing = variant('missing.vmdk', (t) => t.replace('layer3.erofs', 'layer9.erofs'));
    assert.throws(() => plan([vmdkMount(missing)]), /extent 3 .*layer9\.erofs does not exist/);
    const outside = variant('outside.vmdk', (t) => t.replace(path.join(dir, 'layer1.erofs'), fixture('basic', 'layer1.erofs')));
    assert.throws(() => plan([vmdkMount(outside)]), /extent 1 .* outside the allowed folders/);
    const short = path.join(dir, 'layer4.erofs');
    const saved = fs.readFileSync(short);
    fs.truncateSync(short, 4096);
    try {
      assert.throws(() => plan([vmdkMount(descriptor)]), /extent 4 .* is 4096 bytes, shorter than the 12288 bytes/);
    } finally {
      fs.writeFileSync(short, saved);
    }
  });

  it('refuses a disk that does not start with an EROFS superblock', () => {
    const swapped = variant('swapped.vmdk', (t) => t.replace(/^RW 16 FLAT "[^"]*fsmeta\.erofs" 0$/m, `RW 16 FLAT "${path.join(dir, 'basic.vmdk')}" 0`));
    assert.throws(() => plan([vmdkMount(swapped)]), /shorter than|no EROFS superblock/);
  });

  it('parses JSON strictly and names the bad field', () => {
    assert.deepEqual(parseMountListJson(JSON.stringify({ mounts: [vmdkMount(descriptor)] })), [vmdkMount(descriptor)]);
    assert.throws(() => parseMountListJson('[{"type":"vmdk","source":1}]'), /mounts\[0\]\.source must be a string/);
    assert.throws(() => parseMountListJson('[{"type":"vmdk","source":"/x","extra":1}]'), /unknown field extra/);
    assert.throws(() => parseMountListJson('{'), /not valid JSON/);
  });

  it('reads `ctr snapshots mounts` output, keeping {{ }} templates whole', () => {
    const out = `mount -t vmdk ${descriptor} /vm-run-target -o ro,X-vmdk.fs=erofs,X-vmdk.layout=flat\n` +
      `mount -t format/overlay overlay /vm-run-target -o index=off,workdir=${dir}/work,upperdir=${dir}/fs,lowerdir={{ mount 0 }}\n`;
    const mounts = parseCtrMounts(out);
    assert.deepEqual(mounts[1].options, ['index=off', `workdir=${dir}/work`, `upperdir=${dir}/fs`, 'lowerdir={{ mount 0 }}']);
    assert.equal(plan(mounts).upper.kind, 'tmpfs');
    assert.throws(() => parseCtrMounts('mount -t vmdk /a b c d\n'), /is not "mount -t TYPE SOURCE TARGET/);
  });

  it('vm-run --check-only exits 125 with the reason, and 0 with the plan', async () => {
    const bad = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only'], JSON.stringify([vmdkMount(fixture('basic', 'merged.vmdk'))]));
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /^vm-run: mount list: mounts\[0\] \(vmdk\): descriptor .*merged\.vmdk: descriptor .* outside the allowed folders/m);
    const good = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only'], JSON.stringify([vmdkMount(descriptor), overlayMount(dir)]));
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^descriptor .*basic\.vmdk \(CID [0-9a-f]{8}, 5 extents, 808 sectors\)$/m);
  });

  it('vm-run refuses to run without --allow-dir', async () => {
    const out = await vmRun(['--mounts', '-', '--check-only'], '[]');
    assert.equal(out.code, 2);
    assert.match(out.stderr, /--allow-dir is required/);
  });
});
