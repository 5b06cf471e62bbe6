/**
 * Picks the kernel modules the guest needs (virtio-blk, EROFS, overlayfs,
 * ext4) from the unpacked Debian package, with their dependencies, in load
 * order. Drivers built into the kernel (`=y` in its config) need nothing.
 *
 * The package ships no modules.dep (depmod runs at install time), so the
 * dependencies are read from each module's own `.modinfo` section
 * (`depends=a,b`). Modules are xz-compressed; they are decompressed here on
 * the host because busybox's insmod cannot read .ko.xz.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GuestKernel } from './guest-kernel';

/** Kernel config symbol -> module name, for every driver the guest init uses. */
export const GUEST_DRIVERS: ReadonlyArray<{ symbol: string; module: string; why: string }> = [
  { symbol: 'CONFIG_VIRTIO_PCI', module: 'virtio_pci', why: 'virtio devices on the PCI bus' },
  { symbol: 'CONFIG_VIRTIO_BLK', module: 'virtio_blk', why: 'the descriptor disk (and the ext4 upper disk)' },
  { symbol: 'CONFIG_EROFS_FS', module: 'erofs', why: 'the flat EROFS image' },
  { symbol: 'CONFIG_OVERLAY_FS', module: 'overlay', why: 'the writable layer over the image' },
  { symbol: 'CONFIG_EXT4_FS', module: 'ext4', why: 'block-mode (mkfs/ext4) upper' },
];

export interface GuestModule {
  name: string;
  /** Decompressed module bytes. */
  data: Buffer;
}

export function readKernelConfig(kernel: GuestKernel): Map<string, string> {
  const config = new Map<string, string>();
  for (const line of fs.readFileSync(kernel.config, 'utf8').split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) config.set(m[1], m[2]);
  }
  return config;
}

/** Indexes every module file of the package by module name (dashes and underscores are equivalent). */
function indexModules(modulesDir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(entry.name)) {
        index.set(entry.name.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_'), full);
      }
    }
  };
  walk(path.join(modulesDir, 'kernel'));
  return index;
}

function decompress(file: string): Buffer {
  if (file.endsWith('.ko')) return fs.readFileSync(file);
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : 'gzip';
  return execFileSync(tool, ['-dc', file], { maxBuffer: 256 << 20 });
}

function modinfo(data: Buffer, key: string): string[] {
  // .modinfo is a run of NUL-terminated key=value strings.
  const values: string[] = [];
  const needle = `\0${key}=`;
  for (let at = data.indexOf(needle); at >= 0; at = data.indexOf(needle, at + 1)) {
    values.push(data.subarray(at + needle.length, data.indexOf(0, at + 1)).toString('latin1'));
  }
  return values;
}

/** Hard dependencies, plus `softdep=pre:` ones (libcrc32c needs the crc32c crypto module loaded first). */
function dependsOf(data: Buffer, index: Map<string, string>): string[] {
  const hard = modinfo(data, 'depends').flatMap((v) => (v ? v.split(',') : []));
  const soft = modinfo(data, 'softdep').flatMap((v) => /^pre:\s*(.*?)(\s+post:.*)?$/.exec(v)?.[1].split(/\s+/) ?? []);
  // A soft dependency names a module alias (libcrc32c: "pre: crc32c"), and
  // without modules.alias we cannot resolve aliases in general; crypto
  // algorithms are provided by <name>_generic (or an arch variant), so try those.
  const softPresent = soft
    .map((d) => d.replace(/-/g, '_'))
    .map((d) => [d, `${d}_generic`, `${d}_intel`].find((candidate) => index.has(candidate)))
    .filter((d): d is string => d !== undefined);
  return [...hard.map((d) => d.replace(/-/g, '_')), ...softPresent];
}

/** Modules to insmod, dependencies first. Throws if a needed driver is neither built in nor shipped. */
export function guestModules(kernel: GuestKernel): GuestModule[] {
  const config = readKernelConfig(kernel);
  const index = indexModules(kernel.modulesDir);
  const ordered: GuestModule[] = [];
  const seen = new Set<string>();
  const add = (name: string, chain: string[]) => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = index.get(name);
    if (!file) throw new Error(`guest kernel ${kernel.release}: module ${name} (needed by ${chain.join(' <- ')}) is not in the package`);
    const data = decompress(file);
    for (const dep of dependsOf(data, index)) add(dep, [dep, ...chain]);
    ordered.push({ name, data });
  };
  for (const driver of GUEST_DRIVERS) {
    const value = config.get(driver.symbol);
    if (value === 'y') continue;
    if (value !== 'm') {
      throw new Error(`guest kernel ${kernel.release}: ${driver.symbol} is ${value ?? 'not set'}; ${driver.why} needs it`);
    }
    add(driver.module, [driver.module]);
  }
  return ordered;
}
