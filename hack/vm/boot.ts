/**
 * One guest boot from an init script: kernel from the cache, initramfs built
 * on the fly in a private temp dir (removed afterwards), QEMU run, console
 * parsed. Shared by vm-run and bench-vm.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseGuestConsole, type GuestReport } from './guest-console';
import { buildInitramfs, findBusybox } from './guest-init';
import { ensureGuestKernel, type GuestKernel } from './guest-kernel';
import { guestModules, type GuestModule } from './guest-modules';
import { qemuArgs, runQemu, type QemuDisk, type QemuResult } from './qemu';

export interface Guest {
  kernel: GuestKernel;
  modules: GuestModule[];
}

export function prepareGuest(cacheDir: string, options: { flavour?: string; refresh?: boolean; log?: (l: string) => void } = {}): Guest {
  const kernel = ensureGuestKernel(cacheDir, options);
  return { kernel, modules: guestModules(kernel) };
}

export function newNonce(): string {
  return `VMRUN-${randomBytes(8).toString('hex')}`;
}

export interface BootOptions {
  guest: Guest;
  init: string;
  nonce: string;
  disks: QemuDisk[];
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  machine?: string;
  extraQemuArgs?: string[];
  onConsole?: (chunk: string) => void;
  /** Called with the full QEMU argv before it starts. */
  onArgs?: (argv: string[]) => void;
}

export interface BootResult {
  qemu: QemuResult;
  report: GuestReport;
  /** Host ms from QEMU spawn to the guest's "erofs-mounted" mark (boot-to-mount). */
  hostMsToMount?: number;
}

export async function bootGuest(o: BootOptions): Promise<BootResult> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'erofs-vmdk-vm-'));
  try {
    const initrd = path.join(work, 'initrd.cpio');
    fs.writeFileSync(initrd, buildInitramfs(o.init, o.guest.modules, findBusybox()));
    const args = qemuArgs({
      kernel: o.guest.kernel.vmlinuz,
      initrd,
      disks: o.disks,
      memoryMiB: o.memoryMiB,
      cpus: o.cpus,
      machine: o.machine,
      extraArgs: o.extraQemuArgs,
    });
    o.onArgs?.(['qemu-system-x86_64', ...args]);
    const mountedMark = `${o.nonce}:MARK erofs-mounted`;
    const qemu = await runQemu(args, { timeoutMs: o.timeoutMs, onConsole: o.onConsole, watch: [mountedMark] });
    return { qemu, report: parseGuestConsole(qemu.console, o.nonce), hostMsToMount: qemu.seenAtMs.get(mountedMark) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
