/**
 * hack/vm-run: the reference consumer of erofs-vmdk's rootfs mount, contract
 * v2 (one fuse.erofs-vmdk-mount entry, docs/contract-v2.md) and v1 (the vmdk
 * mount, go-shim-compat.md §1).
 *
 * Takes a container rootfs mount list, validates it strictly, boots a QEMU
 * guest (TCG) with the Debian 13 kernel, attaches the descriptor as ONE
 * read-only virtio-blk disk, mounts it as EROFS without device= options,
 * composes the writable root as the list says, chroots, runs the command and
 * prints its stdout/stderr; exits with the command's exit status.
 *
 * Exit codes: the command's own status; 125 = vm-run error (bad mount list,
 * guest failure, timeout).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Mount } from '../../src/mount/index';
import { bootGuest, newNonce, prepareGuest } from './boot';
import { IMAGE_DISK_SERIAL, renderInit, UPPER_DISK_SERIAL, type ExecMode } from './guest-init';
import { defaultCacheDir } from './guest-kernel';
import { planGuest, type GuestPlan } from './mount-list';
import { mountsFromCtr, mountsFromGrpc, mountsFromJson } from './mount-source';
import { driveArgs, type QemuDisk } from './qemu';

export const EXIT_VM_RUN_ERROR = 125;

const USAGE = `Usage: hack/vm-run --allow-dir DIR [source] [options] -- COMMAND [ARG...]

Boots a QEMU guest (Debian 13 kernel, busybox initramfs) from a container rootfs
mount list of erofs-vmdk (contract v2: one fuse.erofs-vmdk-mount entry; or
contract v1: the vmdk mount) and runs COMMAND in it.

Mount list source (exactly one):
  --mounts FILE|-          JSON: [{type, source, target, options}] or {"mounts": [...]}
  --ctr KEY                \`ctr snapshots --snapshotter S mounts <target> KEY\` (containerd)
  --grpc KEY               Snapshots.Mounts over gRPC on --address (containerd's or erofs-vmdk's socket)
    --address SOCK         default /run/containerd/containerd.sock
    --namespace NS         default "default"
    --snapshotter NAME     default "erofs-vmdk"

Required:
  --allow-dir DIR          the descriptor, every extent and a block-mode upper image
                           must lie inside DIR (repeatable; e.g. the snapshotter's root)

Options:
  --exec chroot|initramfs  chroot into the root (default), or run COMMAND with the
                           initramfs busybox in the root folder (for images without a shell;
                           $ROOTFS names the root)
  --timeout SECONDS        kill the guest after this long (default 300)
  --memory MIB             guest memory (default 512)
  --cpus N                 guest vCPUs (default 1)
  --cache DIR              kernel cache (default $EROFS_VMDK_VM_CACHE or ~/.cache/erofs-vmdk/vm)
  --kernel-flavour F       Debian linux-image flavour (default cloud-amd64)
  --refresh-kernel         fetch the kernel again even if cached
  --fetch-kernel-only      fetch/unpack the kernel and exit
  --check-only             validate the mount list and print the plan; no boot
                           (with --print-qemu: also the -drive/-device arguments)
  --verbose                copy the guest console to stderr
  --print-qemu             print the QEMU command line to stderr
  --json                   print {"exitCode","stdout","stderr","marks","hostMsToMount"} on stdout
`;

interface Options {
  allowDirs: string[];
  exec: ExecMode;
  timeoutMs: number;
  memoryMiB: number;
  cpus: number;
  cacheDir: string;
  flavour?: string;
  refreshKernel: boolean;
  verbose: boolean;
  printQemu: boolean;
  json: boolean;
  checkOnly: boolean;
  fetchOnly: boolean;
  command: string[];
  source: { kind: 'json'; file: string } | { kind: 'ctr' | 'grpc'; key: string; address: string; namespace: string; snapshotter: string };
}

class UsageError extends Error {}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[1-9][0-9]*$/.test(value)) throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mounts: { type: 'string' },
      ctr: { type: 'string' },
      grpc: { type: 'string' },
      address: { type: 'string', default: '/run/containerd/containerd.sock' },
      namespace: { type: 'string', default: 'default' },
      snapshotter: { type: 'string', default: 'erofs-vmdk' },
      'allow-dir': { type: 'string', multiple: true, default: [] },
      exec: { type: 'string', default: 'chroot' },
      timeout: { type: 'string' },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      cache: { type: 'string' },
      'kernel-flavour': { type: 'string' },
      'refresh-kernel': { type: 'boolean', default: false },
      'fetch-kernel-only': { type: 'boolean', default: false },
      'check-only': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      'print-qemu': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) throw new UsageError('');
  const fetchOnly = values['fetch-kernel-only'] as boolean;
  const sources = (['mounts', 'ctr', 'grpc'] as const).filter((k) => values[k] !== undefined);
  if (!fetchOnly && sources.length !== 1) throw new UsageError('give exactly one of --mounts, --ctr, --grpc');
  const exec = values.exec as string;
  if (exec !== 'chroot' && exec !== 'initramfs') throw new UsageError(`--exec must be chroot or initramfs, got ${exec}`);
  const checkOnly = values['check-only'] as boolean;
  if (!fetchOnly && !checkOnly && positionals.length === 0) throw new UsageError('no COMMAND given (after --)');
  const allowDirs = (values['allow-dir'] as string[]).map((dir) => {
    if (!path.isAbsolute(dir)) throw new UsageError(`--allow-dir ${dir} must be absolute`);
    try {
      return fs.realpathSync(dir);
    } catch {
      throw new UsageError(`--allow-dir ${dir} does not exist`);
    }
  });
  if (!fetchOnly && allowDirs.length === 0) throw new UsageError('--allow-dir is required: descriptors are only accepted inside it');
  const kind = sources[0];
  const source: Options['source'] =
    kind === 'mounts' || kind === undefined
      ? { kind: 'json', file: (values.mounts as string | undefined) ?? '-' }
      : {
          kind,
          key: values[kind] as string,
          address: values.address as string,
          namespace: values.namespace as string,
          snapshotter: values.snapshotter as string,
        };
  return {
    allowDirs,
    exec,
    timeoutMs: positiveInt(values.timeout as string | undefined, '--timeout', 300) * 1000,
    memoryMiB: positiveInt(values.memory as string | undefined, '--memory', 512),
    cpus: positiveInt(values.cpus as string | undefined, '--cpus', 1),
    cacheDir: path.resolve((values.cache as string | undefined) ?? defaultCacheDir()),
    flavour: values['kernel-flavour'] as string | undefined,
    refreshKernel: values['refresh-kernel'] as boolean,
    verbose: values.verbose as boolean,
    printQemu: values['print-qemu'] as boolean,
    json: values.json as boolean,
    checkOnly,
    fetchOnly,
    command: positionals,
    source,
  };
}

async function loadMounts(o: Options): Promise<Mount[]> {
  const s = o.source;
  if (s.kind === 'json') return mountsFromJson(s.file);
  if (s.kind === 'ctr') return mountsFromCtr(s);
  return mountsFromGrpc(s);
}

/**
 * The block-mode upper image may not exist yet: containerd's mkfs/ transformer
 * (v1) or the host helper (v2) creates it on first use, so a consumer that gets
 * the list verbatim must too. An empty file is formatted the same way.
 */
function ensureUpperImage(plan: GuestPlan, log: (l: string) => void): void {
  if (plan.upper.kind !== 'ext4') return;
  const image = plan.upper.image;
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(image);
  } catch {
    /* missing: created below */
  }
  if (existing && (!existing.isFile() || existing.size > 0)) return;
  log(`vm-run: ${existing ? 'formatting empty' : 'creating'} block-mode upper ${image} (${plan.upper.createSize} bytes, ext4)`);
  const flags = fs.constants.O_WRONLY | (existing ? 0 : fs.constants.O_CREAT | fs.constants.O_EXCL) | fs.constants.O_NOFOLLOW;
  const fd = fs.openSync(image, flags, 0o600);
  try {
    fs.ftruncateSync(fd, plan.upper.createSize);
  } finally {
    fs.closeSync(fd);
  }
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (existing) fs.truncateSync(image, 0);
    else fs.rmSync(image, { force: true });
    throw new Error(`mkfs.ext4 ${image} failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim()}`);
  }
}

/** ONE read-only vmdk disk for the root, plus the writable raw upper image in block mode. */
export function planDisks(plan: GuestPlan): QemuDisk[] {
  const disks: QemuDisk[] = [{ file: plan.descriptor.path, format: 'vmdk', readOnly: true, serial: IMAGE_DISK_SERIAL }];
  if (plan.upper.kind === 'ext4') disks.push({ file: plan.upper.image, format: 'raw', readOnly: false, serial: UPPER_DISK_SERIAL });
  return disks;
}

function describePlan(plan: GuestPlan): string {
  const d = plan.descriptor;
  const mode = plan.upper.kind === 'none' ? 'view' : plan.upper.kind === 'tmpfs' ? 'directory mode' : 'block mode';
  const lines = [
    `contract v${plan.contract} (${plan.contract === 2 ? 'fuse.erofs-vmdk-mount' : 'vmdk'}), ${mode}`,
    `descriptor ${d.path} (CID ${d.cid}, ${d.extents.length} extents, ${d.totalSectors} sectors)`,
    ...d.extents.map((e, i) => `  extent ${i}: ${e.path} ${e.sectors} sectors @${e.offsetSectors}`),
    `upper: ${plan.upper.kind === 'ext4' ? `ext4 ${plan.upper.image} (${plan.upper.upperSubdir}, ${plan.upper.workSubdir})` : plan.upper.kind}`,
  ];
  if (plan.overlayOptions.length) lines.push(`overlay options: ${plan.overlayOptions.join(',')}`);
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(argv);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const message = (err as Error).message;
      if (!message) {
        process.stdout.write(USAGE);
        return 0;
      }
      process.stderr.write(`vm-run: ${message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const kernelOptions = { flavour: o.flavour, refresh: o.refreshKernel, log };
    if (o.fetchOnly) {
      const guest = prepareGuest(o.cacheDir, kernelOptions);
      log(`vm-run: kernel ${guest.kernel.release} at ${guest.kernel.vmlinuz}; modules: ${guest.modules.map((m) => m.name).join(' ') || 'none'}`);
      return 0;
    }
    // Validate first: a bad mount list fails fast, without touching the network or the cache.
    const plan = planGuest(await loadMounts(o), o.allowDirs);
    if (o.checkOnly) {
      process.stdout.write(describePlan(plan));
      if (o.printQemu) log(planDisks(plan).flatMap((d, i) => driveArgs(d, `disk${i}`)).join(' '));
      return 0;
    }
    const guest = prepareGuest(o.cacheDir, kernelOptions);
    if (o.verbose) log(describePlan(plan).trimEnd());
    ensureUpperImage(plan, log);
    const disks = planDisks(plan);
    const nonce = newNonce();
    const result = await bootGuest({
      guest,
      init: renderInit({ nonce, modules: guest.modules, plan, command: o.command, exec: o.exec }),
      nonce,
      disks,
      timeoutMs: o.timeoutMs,
      memoryMiB: o.memoryMiB,
      cpus: o.cpus,
      onConsole: o.verbose ? (chunk) => process.stderr.write(chunk) : undefined,
      onArgs: o.printQemu ? (args) => log(args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(' ')) : undefined,
    });
    const { report, qemu } = result;
    if (qemu.timedOut) throw new Error(`guest did not finish within ${o.timeoutMs / 1000} s (TCG); killed`);
    if (report.failure) throw new Error(`guest init failed: ${report.failure}`);
    if (report.exitCode === undefined) {
      const tail = qemu.console.split('\n').slice(-15).join('\n  ');
      throw new Error(`guest ended without a result (qemu exit ${qemu.exitCode}${qemu.stderr ? `, stderr: ${qemu.stderr.trim()}` : ''})\n  console tail:\n  ${tail}`);
    }
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({
          exitCode: report.exitCode,
          stdout: report.stdout!.toString('utf8'),
          stderr: report.stderr!.toString('utf8'),
          marks: Object.fromEntries(report.marks),
          hostMsToMount: result.hostMsToMount,
          wallMs: qemu.wallMs,
        })}\n`,
      );
    } else {
      process.stdout.write(report.stdout!);
      process.stderr.write(report.stderr!);
    }
    return report.exitCode;
  } catch (err) {
    log(`vm-run: ${(err as Error).message}`);
    return EXIT_VM_RUN_ERROR;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`vm-run: ${(err as Error).stack ?? err}\n`);
      process.exitCode = EXIT_VM_RUN_ERROR;
    },
  );
}
