/**
 * Runs one QEMU guest (TCG; no KVM on this machine) with the Debian kernel,
 * an initramfs, and virtio-blk disks, and reads the serial console.
 *
 * Disks are attached as `-drive …,if=none` + `-device virtio-blk-pci` so each
 * gets a serial the guest can find it by. The image disk is always
 * `readonly=on,force-share=on`: read-only so guest writes can never reach the
 * layer blobs or the descriptor's CID, force-share so a snapshot that another
 * process holds open (another VM, qemu-img) does not block the boot.
 */
import { spawn } from 'node:child_process';

export interface QemuDisk {
  file: string;
  format: 'vmdk' | 'raw';
  readOnly: boolean;
  serial: string;
  /** Put the virtio-blk-pci function behind this bridge (id) at this slot; default: next free root-bus slot. */
  pci?: { bus: string; addr: number };
}

export interface QemuOptions {
  kernel: string;
  initrd: string;
  disks: QemuDisk[];
  memoryMiB?: number;
  cpus?: number;
  /** Extra kernel command line. */
  append?: string;
  /** Machine type: `pc` has 32 PCI slots on its one bus, which bounds the disk count. */
  machine?: string;
  /** Placed before the disks. */
  extraArgs?: string[];
}

export function driveArgs(disk: QemuDisk, id: string): string[] {
  if (/[,\s]/.test(disk.file)) throw new Error(`disk path ${disk.file} contains a comma or whitespace (QEMU option syntax)`);
  const drive = [`file=${disk.file}`, `format=${disk.format}`, 'if=none', `id=${id}`];
  if (disk.readOnly) drive.push('readonly=on', 'force-share=on');
  const placement = disk.pci ? `,bus=${disk.pci.bus},addr=0x${disk.pci.addr.toString(16)}` : '';
  return ['-drive', drive.join(','), '-device', `virtio-blk-pci,drive=${id},serial=${disk.serial}${placement}`];
}

export function qemuArgs(o: QemuOptions): string[] {
  return [
    '-nodefaults',
    '-no-user-config',
    '-machine', `${o.machine ?? 'pc'},accel=tcg`,
    '-cpu', 'max',
    '-smp', String(o.cpus ?? 1),
    '-m', String(o.memoryMiB ?? 512),
    '-display', 'none',
    '-serial', 'stdio',
    '-no-reboot',
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    // panic=-1 + -no-reboot: a guest panic ends QEMU instead of hanging.
    '-append', `console=ttyS0 panic=-1 quiet loglevel=1 rdinit=/init ${o.append ?? ''}`.trim(),
    // Extra devices (e.g. PCI bridges) first: disks may name them as their bus.
    ...(o.extraArgs ?? []),
    ...o.disks.flatMap((d, i) => driveArgs(d, `disk${i}`)),
  ];
}

export interface QemuResult {
  /** Console text, CR removed. */
  console: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** QEMU's own stderr (option errors, "no slot available", …). */
  stderr: string;
  /** Host milliseconds from spawn to exit. */
  wallMs: number;
  /** Host milliseconds from spawn to the first console line containing each needle of `watch`. */
  seenAtMs: Map<string, number>;
}

export function runQemu(
  args: string[],
  options: { timeoutMs: number; onConsole?: (chunk: string) => void; watch?: string[] },
): Promise<QemuResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let consoleText = '';
    let stderr = '';
    let timedOut = false;
    const seenAtMs = new Map<string, number>();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    // Interrupted (Ctrl-C, a test runner's kill): take the guest down with us,
    // so the caller's finally blocks still clean up and no QEMU is left behind.
    const onSignal = () => child.kill('SIGKILL');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const stopListening = () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    };
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      const clean = chunk.replace(/\r/g, '');
      consoleText += clean;
      options.onConsole?.(clean);
      for (const needle of options.watch ?? []) {
        if (!seenAtMs.has(needle) && consoleText.includes(needle)) seenAtMs.set(needle, Date.now() - started);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      stopListening();
      reject(new Error(`cannot start qemu-system-x86_64: ${err.message}`));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      stopListening();
      resolve({ console: consoleText, exitCode, signal, timedOut, stderr, wallMs: Date.now() - started, seenAtMs });
    });
  });
}
