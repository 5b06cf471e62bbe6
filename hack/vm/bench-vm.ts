/**
 * hack/bench-vm: the device-count comparison.
 *
 * The same N-layer image is booted
 *   (a) as ONE virtio-blk disk: the vmdk flat descriptor (fsmeta ‖ L1 ‖ … ‖ Ln),
 *       mounted in the guest as EROFS with no device= options;
 *   (b) as N+1 virtio-blk disks: fsmeta plus one disk per layer blob, mounted
 *       with `-o device=/dev/vdX,…` (what a VM runtime must do with
 *       containerd's multi-device erofs mount).
 * and prints boot-to-mount time for both, then grows N to show where (b)
 * runs out of PCI slots while (a) stays one disk.
 *
 * Layers are built with Debian's mkfs.erofs 1.5 from folders; the fsmeta is
 * built by the native merge (src/merge mergeLayers, H4), since mkfs.erofs 1.5
 * has no rebuild mode. The descriptor is written by src/erofs prepareFlatDisk +
 * src/vmdk renderDescriptor (what `erofs-vmdk vmdk` does).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { prepareFlatDisk } from '../../src/erofs/flat-layout';
import { mergeLayers } from '../../src/merge/index';
import { renderDescriptor } from '../../src/vmdk/index';
import { bootGuest, newNonce, prepareGuest, type Guest } from './boot';
import { IMAGE_DISK_SERIAL, initPrelude, renderInit } from './guest-init';
import { defaultCacheDir } from './guest-kernel';
import type { GuestPlan } from './mount-list';
import type { QemuDisk } from './qemu';
import { checkFlatDescriptor } from './vmdk-descriptor';

interface ImageSet {
  layers: string[];
  fsmeta: string;
  descriptor: string;
}

function uuidFor(n: number, k: number): string {
  const h = createHash('sha256').update(`bench-vm:${n}:${k}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** N layers: layer k adds layers/k.txt and overwrites etc/top, so the top layer must win. */
function buildImage(dir: string, n: number): ImageSet {
  fs.mkdirSync(dir, { recursive: true });
  const layers: string[] = [];
  for (let k = 1; k <= n; k++) {
    const tree = path.join(dir, `tree${k}`);
    fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'layers'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'etc', 'top'), `top is layer ${k}\n`);
    fs.writeFileSync(path.join(tree, 'layers', `${k}.txt`), `layer ${k}\n`.repeat(600)); // > 1 block of data
    const layer = path.join(dir, `layer${k}.erofs`);
    execFileSync('mkfs.erofs', ['--quiet', '-T0', '--all-root', '-Enoinline_data', `-U${uuidFor(n, k)}`, layer, tree], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.rmSync(tree, { recursive: true, force: true });
    layers.push(layer);
  }
  const fsmeta = path.join(dir, 'fsmeta.erofs');
  // Native merge (H4). Until it lands this throws MergeError('not-built').
  fs.writeFileSync(fsmeta, mergeLayers(layers.map((p) => ({ path: p }))));
  const disk = prepareFlatDisk({ fsmeta, layers }, { repairDir: dir });
  if (disk.repaired) throw new Error(`the merged fsmeta for ${n} layers needed a repair: ${disk.problems.map((p) => p.code).join(', ')}`);
  const descriptor = path.join(dir, 'image.vmdk');
  fs.writeFileSync(descriptor, renderDescriptor(disk.extents));
  return { layers, fsmeta, descriptor };
}

/** An existing fixture case folder (fsmeta.erofs + layers.txt), e.g. test/fixtures/erofs/basic. */
function fixtureImage(dir: string, work: string): ImageSet {
  const layers = fs.readFileSync(path.join(dir, 'layers.txt'), 'utf8').trim().split('\n').map((l) => path.join(dir, l));
  const fsmeta = path.join(dir, 'fsmeta.erofs');
  const disk = prepareFlatDisk({ fsmeta, layers }, { repairDir: work });
  const descriptor = path.join(work, 'fixture.vmdk');
  fs.writeFileSync(descriptor, renderDescriptor(disk.extents));
  return { layers, fsmeta: disk.fsmetaPath ?? fsmeta, descriptor };
}

interface Sample {
  ok: boolean;
  /** Guest uptime (s) when EROFS was mounted. */
  guestMount?: number;
  /** Guest uptime (s) when /init started (kernel boot, PCI enumeration). */
  initStart?: number;
  /** Guest seconds from /init start to EROFS mounted: virtio_blk load + disk probe + lookup + mount. */
  initToMount?: number;
  hostMsToMount?: number;
  output?: string;
  error?: string;
}

/** Same check on both paths: the top layer's etc/top and the number of entries in the merged tree. */
const CHECK_SCRIPT = 'cat etc/top 2>/dev/null; find . | wc -l';
const CHECK_COMMAND = ['sh', '-c', CHECK_SCRIPT];

async function bootFlat(guest: Guest, image: ImageSet, allowedDirs: string[], cpus: number): Promise<Sample> {
  const descriptor = checkFlatDescriptor(image.descriptor, allowedDirs);
  const plan: GuestPlan = { contract: 1, descriptor, upper: { kind: 'none' }, overlayOptions: [], mkdirUpper: false };
  const nonce = newNonce();
  const result = await bootGuest({
    guest,
    nonce,
    init: renderInit({ nonce, modules: guest.modules, plan, command: CHECK_COMMAND, exec: 'initramfs' }),
    disks: [{ file: descriptor.path, format: 'vmdk', readOnly: true, serial: IMAGE_DISK_SERIAL }],
    timeoutMs: 300_000,
    cpus,
  });
  return sampleOf(result);
}

/** (b): fsmeta + one raw disk per layer; the guest maps serials to /dev/vdX and passes device= in slot order. */
function multiDiskInit(nonce: string, guest: Guest, layerCount: number): string {
  return `${initPrelude(nonce, guest.modules)}
META=$(disk_by_serial fsmeta) || die "virtio disk fsmeta did not appear"
OPTS=ro
k=1
while [ $k -le ${layerCount} ]; do
  D=$(disk_by_serial l$k) || die "virtio disk l$k did not appear"
  OPTS="$OPTS,device=$D"
  k=$((k + 1))
done
mount -t erofs -o "$OPTS" "$META" /mnt/image || die "mount -t erofs -o <${layerCount} devices> $META failed"
mark erofs-mounted
echo "$N:BEGIN"
(cd /mnt/image && ${CHECK_SCRIPT}) >/run/out 2>/run/err
rc=$?
echo "$N:STDOUT"
base64 /run/out
echo "$N:STDERR"
base64 /run/err
echo "$N:END $rc"
poweroff -f
sleep 5
`;
}

/** Slots a pci-bridge offers to devices (addr 1..31; 0 is left to the bridge's own hotplug controller). */
const SLOTS_PER_BRIDGE = 31;

/**
 * (b) with every disk on the root bus (what a shim does by default), or, with
 * `bridges`, spread behind as many pci-bridge devices as needed.
 */
async function bootMultiDisk(guest: Guest, image: ImageSet, machine: string, bridges: boolean, cpus: number): Promise<Sample> {
  const files = [image.fsmeta, ...image.layers];
  const bridgeCount = bridges ? Math.ceil(files.length / SLOTS_PER_BRIDGE) : 0;
  const disks: QemuDisk[] = files.map((file, i) => ({
    file,
    format: 'raw',
    readOnly: true,
    serial: i === 0 ? 'fsmeta' : `l${i}`,
    pci: bridges ? { bus: `br${Math.floor(i / SLOTS_PER_BRIDGE)}`, addr: 1 + (i % SLOTS_PER_BRIDGE) } : undefined,
  }));
  // q35's root bus is PCIe: a conventional pci-bridge must hang off a pcie-pci-bridge there.
  const bridgeArgs = Array.from({ length: bridgeCount }, (_, b) => [
    '-device',
    machine === 'q35' ? `pcie-pci-bridge,id=br${b}` : `pci-bridge,id=br${b},chassis_nr=${b + 1}`,
  ]).flat();
  const nonce = newNonce();
  const result = await bootGuest({
    guest,
    nonce,
    init: multiDiskInit(nonce, guest, image.layers.length),
    disks,
    timeoutMs: 300_000,
    machine,
    extraQemuArgs: bridgeArgs,
    memoryMiB: 512,
    cpus,
  });
  return sampleOf(result);
}

function sampleOf(result: Awaited<ReturnType<typeof bootGuest>>): Sample {
  const { report, qemu } = result;
  if (report.exitCode === undefined) {
    const why = report.failure ?? (qemu.stderr.trim() || `qemu exit ${qemu.exitCode}, no result on the console`);
    return { ok: false, error: why.trim() };
  }
  const mounted = report.marks.get('erofs-mounted');
  const initStart = report.marks.get('kernel-up');
  return {
    ok: report.exitCode === 0,
    guestMount: mounted,
    initStart,
    initToMount: mounted !== undefined && initStart !== undefined ? mounted - initStart : undefined,
    hostMsToMount: result.hostMsToMount,
    output: report.stdout!.toString('utf8').trim().replace(/\s+/g, ' '),
  };
}

function median(values: number[]): number {
  const s = [...values].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

function summarize(label: string, samples: Sample[]): string {
  const ok = samples.filter((s) => s.ok);
  if (ok.length === 0) return `${label.padEnd(34)} FAILED: ${samples[0].error?.replace(/\n/g, '\n      ')}`;
  const f = (xs: Array<number | undefined>, digits: number) => median(xs.filter((x): x is number => x !== undefined)).toFixed(digits);
  return (
    `${label.padEnd(34)} host spawn->mount ${f(ok.map((s) => s.hostMsToMount), 0).padStart(5)} ms` +
    `  guest: init@${f(ok.map((s) => s.initStart), 2)} s mount@${f(ok.map((s) => s.guestMount), 2)} s` +
    ` (init->mount ${(1000 * Number(f(ok.map((s) => s.initToMount), 3))).toFixed(0)} ms)` +
    `  [${ok.length}/${samples.length} ok] -> "${ok[0].output}"`
  );
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: 'string', default: '40' },
      grow: { type: 'string', default: '64,128' },
      runs: { type: 'string', default: '3' },
      machine: { type: 'string', default: 'pc' },
      cache: { type: 'string' },
      keep: { type: 'boolean', default: false },
      fixture: { type: 'string' },
      'always-bridges': { type: 'boolean', default: false },
      cpus: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('Usage: hack/bench-vm [--layers 40] [--grow 64,128] [--runs 3] [--machine pc|q35] [--cpus 1] [--always-bridges] [--fixture DIR] [--keep]\n');
    return 0;
  }
  const base = Number(values.layers);
  const grow = (values.grow as string).split(',').filter(Boolean).map(Number);
  const runs = Number(values.runs);
  const machine = values.machine as string;
  const cpus = Number(values.cpus);
  if (![base, ...grow, runs, cpus].every((x) => Number.isInteger(x) && x > 0)) throw new Error('--layers, --grow and --runs take positive integers');
  const guest = prepareGuest(path.resolve((values.cache as string | undefined) ?? defaultCacheDir()), { log: (l) => process.stderr.write(`${l}\n`) });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'erofs-vmdk-bench-vm-'));
  // A signal kills the running guest (see qemu.ts); stop after it and clean up.
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const checkInterrupted = () => {
    if (interrupted) throw new Error('interrupted');
  };
  const qemuVersion = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  process.stdout.write(`bench-vm: ${qemuVersion}, TCG, machine ${machine}, ${cpus} vCPU, guest ${guest.kernel.release}, ${os.cpus().length} host CPUs, median of ${runs}\n`);
  try {
    const fixtureDir = values.fixture as string | undefined;
    for (const n of fixtureDir ? [0] : [base, ...grow]) {
      const dir = fixtureDir ? fs.realpathSync(fixtureDir) : path.join(work, `n${n}`);
      const t0 = Date.now();
      const image = fixtureDir ? fixtureImage(dir, work) : buildImage(dir, n);
      const allowed = [fs.realpathSync(work), dir];
      process.stdout.write(`\n${image.layers.length} layers (built + merged in ${Date.now() - t0} ms; descriptor ${checkFlatDescriptor(image.descriptor, allowed).extents.length} extents)\n`);
      const rounds = n === base || fixtureDir ? runs : 1;
      const flat: Sample[] = [];
      const multi: Sample[] = [];
      const bridged: Sample[] = [];
      for (let r = 0; r < rounds; r++) {
        flat.push(await bootFlat(guest, image, allowed, cpus));
        checkInterrupted();
        multi.push(await bootMultiDisk(guest, image, machine, false, cpus));
        checkInterrupted();
        if (multi[multi.length - 1].ok && !values['always-bridges']) continue;
        // The root bus is full: what it takes to boot (b) anyway.
        bridged.push(await bootMultiDisk(guest, image, machine, true, cpus));
        checkInterrupted();
      }
      const disks = image.layers.length + 1;
      process.stdout.write(`${summarize(`  (a) vmdk: 1 virtio-blk disk`, flat)}\n`);
      process.stdout.write(`${summarize(`  (b) ${disks} disks on the root bus`, multi)}\n`);
      if (bridged.length) {
        process.stdout.write(`${summarize(`  (b) ${disks} disks, ${Math.ceil(disks / SLOTS_PER_BRIDGE)} pci-bridges`, bridged)}\n`);
      }
      if (!values.keep && !fixtureDir) fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (values.keep) process.stdout.write(`kept ${work}\n`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`bench-vm: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
