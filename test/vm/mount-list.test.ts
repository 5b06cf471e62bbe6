/**
 * vm-run accepts the mount contracts v2 (one fuse.erofs-vmdk-mount entry,
 * docs/contract-v2.md) and v1 (the vmdk mount) and refuses everything a
 * shim must not boot: other contracts, mixed or half option sets, descriptors outside the allowed folder, symlinks,
 * missing or short extents, lines QEMU would silently drop, unknown options.
 * No VM is booted here.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { parseMountListJson, planGuest, V2_MOUNT_TYPE, VMDK_V1_OPTIONS } from '../../hack/vm/mount-list';
import { parseCtrMounts } from '../../hack/vm/mount-source';
import { parseCtrMounts as parseCtrMountsSupport } from '../support/containerd';
import type { Mount } from '../../src/mount/index';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { overlayMount, v2Mount, vmdkMount, vmRun, writeDescriptor } from './vm-harness';

const withContract = (m: Mount, value: string): Mount => ({ ...m, options: m.options.map((o) => o.replace(/^X-erofs-vmdk\.contract=.*/, `X-erofs-vmdk.contract=${value}`)) });

describe('vm-run mount list validation (contracts v1 and v2)', () => {
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

  it("accepts the embedded backend's block-mode overlay with containerd's X-containerd.mkdir.path options", () => {
    const ext4 = { type: 'mkfs/ext4', source: path.join(dir, 'rwlayer.img'), target: '', options: ['X-containerd.mkfs.fs=ext4', 'X-containerd.mkfs.size=67108864', 'rw', 'loop'] };
    const overlay = (mkdir: string[]): Mount => ({
      type: 'format/mkdir/overlay',
      source: 'overlay',
      target: '',
      options: [...mkdir, 'workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/upper', 'lowerdir={{ mount 1 }}'],
    });
    const p = plan([ext4, vmdkMount(descriptor), overlay(['X-containerd.mkdir.path={{ mount 0 }}/upper:0755', 'X-containerd.mkdir.path={{ mount 0 }}/work:0755'])]);
    assert.equal(p.upper.kind, 'ext4');
    assert.deepEqual(p.overlayOptions, []);
    assert.throws(
      () => plan([ext4, vmdkMount(descriptor), overlay(['X-containerd.mkdir.path={{ mount 0 }}/elsewhere:0755'])]),
      /X-containerd\.mkdir\.path=\{\{ mount 0 \}\}\/elsewhere:0755 must name its upperdir or workdir once/,
    );
    assert.throws(
      () => plan([vmdkMount(descriptor), { ...overlayMount(dir), options: [...overlayMount(dir).options, `X-containerd.mkdir.path=${dir}/fs`] }]),
      /only a block-mode mkdir\/ overlay may carry X-containerd\.mkdir\.path/,
    );
  });

  const refusals: Array<[string, () => Mount[], RegExp]> = [
    ['no vmdk mount (multi-device erofs is not for VMs)', () => [{ type: 'erofs', source: layers[0], target: '', options: ['ro', 'loop'] }, overlayMount(dir)], /exactly one vmdk mount \(contract v1\) or one fuse\.erofs-vmdk-mount mount \(contract v2\), found 0 vmdk/],
    ['two vmdk mounts', () => [vmdkMount(descriptor), vmdkMount(descriptor)], /exactly one vmdk mount .*found 2 vmdk/],
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

  describe('contract v2: one fuse.erofs-vmdk-mount entry', () => {
    const dirMode = () => v2Mount(descriptor, { upperdir: path.join(dir, 'fs'), workdir: path.join(dir, 'work') });
    const blockMode = () => v2Mount(descriptor, { image: path.join(dir, 'v2-rwlayer.img'), size: 67108864 });
    /** The entry with its options edited. */
    const withOptions = (m: Mount, edit: (o: string[]) => string[]): Mount => ({ ...m, options: edit([...m.options]) });

    it('accepts a view (ro): the EROFS image itself, read-only', () => {
      const p = plan([v2Mount(descriptor, { view: true })]);
      assert.equal(p.contract, 2);
      assert.deepEqual(p.upper, { kind: 'none' });
      assert.equal(p.descriptor.path, descriptor);
      assert.equal(p.descriptor.extents.length, 5);
    });

    it('accepts directory mode: host upperdir/workdir become a guest tmpfs upper', () => {
      const p = plan([dirMode()]);
      assert.equal(p.contract, 2);
      assert.deepEqual(p.upper, { kind: 'tmpfs' });
      assert.deepEqual(p.overlayOptions, []);
    });

    it('accepts block mode: the upper image is a second disk with /upper and /work (created when missing)', () => {
      const p = plan([blockMode()]);
      assert.equal(p.contract, 2);
      assert.deepEqual(p.upper, { kind: 'ext4', image: path.join(dir, 'v2-rwlayer.img'), createSize: 67108864, upperSubdir: 'upper', workSubdir: 'work' });
      assert.equal(p.mkdirUpper, true);
    });

    it('accepts the options in any order, and an existing upper image', () => {
      const image = path.join(dir, 'v2-existing.img');
      fs.writeFileSync(image, '');
      try {
        const p = plan([withOptions(v2Mount(descriptor, { image, size: 1 << 20 }), (o) => o.reverse())]);
        assert.equal(p.upper.kind === 'ext4' && p.upper.image, image);
        assert.equal(plan([withOptions(v2Mount(descriptor, { view: true }), (o) => o.reverse())]).upper.kind, 'none');
      } finally {
        fs.rmSync(image);
      }
    });

    const v2Refusals: Array<[string, () => Mount[], RegExp]> = [
      ['an unknown option', () => [withOptions(dirMode(), (o) => [...o, 'X-erofs-vmdk.cache=on'])], /unknown option X-erofs-vmdk\.cache=on: not part of mount contract v2/],
      ['a generic flag the host helper would accept (rw)', () => [withOptions(dirMode(), (o) => [...o, 'rw'])], /unknown option rw: not part of mount contract v2/],
      ['contract=3', () => [withOptions(dirMode(), (o) => o.map((x) => x.replace('contract=2', 'contract=3')))], /X-erofs-vmdk\.contract=3: this consumer speaks contract 2 .*refusing a newer or different contract/],
      ['a missing contract option', () => [withOptions(dirMode(), (o) => o.filter((x) => !x.startsWith('X-erofs-vmdk.contract')))], /has no X-erofs-vmdk\.contract= option/],
      ['a repeated option', () => [withOptions(dirMode(), (o) => [...o, 'X-erofs-vmdk.contract=2'])], /repeats option X-erofs-vmdk\.contract/],
      ['X-vmdk.layout other than flat', () => [withOptions(dirMode(), (o) => o.map((x) => x.replace('layout=flat', 'layout=multi')))], /needs X-vmdk\.layout=flat, got X-vmdk\.layout=multi/],
      ['upperdir without workdir', () => [withOptions(dirMode(), (o) => o.filter((x) => !x.startsWith('workdir=')))], /has upperdir without workdir/],
      ['a relative upperdir', () => [withOptions(dirMode(), (o) => o.map((x) => (x.startsWith('upperdir=') ? 'upperdir=fs' : x)))], /upperdir=fs must be an absolute host folder/],
      ['upper-image without size', () => [withOptions(blockMode(), (o) => o.filter((x) => !x.startsWith('X-erofs-vmdk.upper-image-size=')))], /block mode needs .*X-erofs-vmdk\.upper-image-size is missing/],
      ['an upper image of another file system', () => [withOptions(blockMode(), (o) => o.map((x) => x.replace('fs=ext4', 'fs=xfs')))], /upper-image-fs=xfs; only ext4 is defined/],
      ['an upper image smaller than 1 MiB', () => [withOptions(blockMode(), (o) => o.map((x) => x.replace('size=67108864', 'size=4096')))], /upper-image-size needs <bytes ≥ 1 MiB>, got "4096"/],
      ['a relative upper image', () => [withOptions(blockMode(), (o) => o.map((x) => x.replace(/upper-image=.*/, 'upper-image=rwlayer.img')))], /upper-image "rwlayer\.img" is not an absolute path/],
      ['an upper image outside the allowed folders', () => [withOptions(blockMode(), (o) => o.map((x) => x.replace(/upper-image=.*/, 'upper-image=/tmp/rwlayer.img')))], /upper-image \/tmp\/rwlayer\.img is outside the allowed folders/],
      ['both directory and block options', () => [withOptions(dirMode(), (o) => [...o, ...blockMode().options.filter((x) => x.includes('upper-image'))])], /mixes directory mode \(upperdir\/workdir\) and block mode/],
      ['ro with a writable layer', () => [withOptions(dirMode(), (o) => ['ro', ...o])], /has ro and a writable layer/],
      ['neither ro nor a writable layer', () => [withOptions(v2Mount(descriptor, { view: true }), (o) => o.filter((x) => x !== 'ro'))], /neither ro \(a view\) nor a writable layer/],
      ['a relative source', () => [v2Mount('basic.vmdk', { view: true })], /\(fuse\.erofs-vmdk-mount\): descriptor basic\.vmdk: .*not an absolute path/],
      ['a source outside the allowed folders', () => [v2Mount(fixture('basic', 'merged.vmdk'), { view: true })], /\(fuse\.erofs-vmdk-mount\): descriptor .* outside the allowed folders/],
      ['a source that is not a .vmdk descriptor', () => [v2Mount(layers[0], { view: true })], /source .*layer1\.erofs does not end in \.vmdk/],
      ['several mounts with a fuse entry', () => [v2Mount(descriptor, { view: true }), overlayMount(dir)], /a contract v2 rootfs is exactly one fuse\.erofs-vmdk-mount mount, got 2 mounts \(types: fuse\.erofs-vmdk-mount, format\/mkdir\/overlay\)/],
      ['two fuse entries', () => [v2Mount(descriptor, { view: true }), v2Mount(descriptor, { view: true })], /exactly one fuse\.erofs-vmdk-mount mount, got 2 mounts/],
      ['the v2 options on the vmdk type', () => [{ ...dirMode(), type: 'vmdk' }], /mounts\[0\] has type "vmdk" with X-erofs-vmdk\.contract=2: a contract v2 mount has type fuse\.erofs-vmdk-mount/],
      ['the helper under another mount program (fuse3.)', () => [{ ...dirMode(), type: 'fuse3.erofs-vmdk-mount' }], /has type "fuse3\.erofs-vmdk-mount" .*a contract v2 mount has type fuse\.erofs-vmdk-mount/],
      ['a target', () => [{ ...dirMode(), target: '/rootfs' }], /has target "\/rootfs"; a rootfs mount has none/],
    ];
    for (const [name, mounts, message] of v2Refusals) {
      it(`refuses ${name}`, () => assert.throws(() => plan(mounts()), message));
    }

    it('reads v2 from `ctr snapshots mounts` output (vm-run and the test support parser agree)', () => {
      for (const m of [dirMode(), blockMode(), v2Mount(descriptor, { view: true })]) {
        const out = `mount -t ${m.type} ${m.source} /vm-run-target -o ${m.options.join(',')}\n`;
        assert.deepEqual(parseCtrMounts(out), [m]);
        assert.deepEqual(parseCtrMountsSupport(out), [{ type: V2_MOUNT_TYPE, source: m.source, options: m.options }]);
        assert.equal(plan(parseCtrMounts(out)).contract, 2);
      }
    });
  });

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
    assert.match(good.stdout, /^contract v1 \(vmdk\), directory mode$/m);
    assert.match(good.stdout, /^descriptor .*basic\.vmdk \(CID [0-9a-f]{8}, 5 extents, 808 sectors\)$/m);
  });

  it('vm-run --check-only --print-qemu: v2 gets one read-only vmdk disk, plus the raw upper image in block mode', async () => {
    const image = path.join(dir, 'v2-print.img');
    const view = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only', '--print-qemu'], JSON.stringify([v2Mount(descriptor, { view: true })]));
    assert.equal(view.code, 0, view.stderr);
    assert.match(view.stdout, /^contract v2 \(fuse\.erofs-vmdk-mount\), view$/m);
    assert.equal(
      view.stderr.trim(),
      `-drive file=${descriptor},format=vmdk,if=none,id=disk0,readonly=on,force-share=on -device virtio-blk-pci,drive=disk0,serial=erofs-vmdk-image`,
    );
    const block = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only', '--print-qemu'], JSON.stringify([v2Mount(descriptor, { image, size: 1 << 26 })]));
    assert.equal(block.code, 0, block.stderr);
    assert.match(block.stdout, /^contract v2 \(fuse\.erofs-vmdk-mount\), block mode$/m);
    assert.match(block.stdout, new RegExp(`^upper: ext4 ${image} \\(upper, work\\)$`, 'm'));
    assert.match(block.stderr, new RegExp(`-drive file=${image},format=raw,if=none,id=disk1 -device virtio-blk-pci,drive=disk1,serial=erofs-vmdk-upper$`, 'm'));
    assert.equal(fs.existsSync(image), false, '--check-only creates nothing');
    const bad = await vmRun(['--allow-dir', dir, '--mounts', '-', '--check-only'], JSON.stringify([withContract(v2Mount(descriptor, { view: true }), '3')]));
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /^vm-run: mount list: mounts\[0\] \(fuse\.erofs-vmdk-mount\) has X-erofs-vmdk\.contract=3/m);
  });

  it('vm-run refuses to run without --allow-dir', async () => {
    const out = await vmRun(['--mounts', '-', '--check-only'], '[]');
    assert.equal(out.code, 2);
    assert.match(out.stderr, /--allow-dir is required/);
  });
});
