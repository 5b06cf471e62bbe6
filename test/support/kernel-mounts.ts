/**
 * Real kernel mounts for tests: loop devices, EROFS (flat and multi-device),
 * read-only overlayfs, and the fixture corpus's own tree lister
 * (erofs-listing.py), so every listing is in the exact format of expected.tsv.
 * Everything is torn down in `finally`, even when a step fails.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixture } from './fixtures';

export function run(cmd: string, args: string[], input?: string | Buffer): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
}

export function attachLoop(file: string, options: { offset?: number; sizeLimit?: number } = {}): string {
  const args = ['-f', '--show', '-r'];
  if (options.offset !== undefined) args.push('-o', String(options.offset));
  if (options.sizeLimit !== undefined) args.push('--sizelimit', String(options.sizeLimit));
  return run('losetup', [...args, file]).trim();
}

export function detachLoop(device: string): void {
  try {
    run('losetup', ['-d', device]);
  } catch {
    /* already gone */
  }
}

export function unmount(target: string): void {
  try {
    run('umount', [target]);
  } catch {
    try {
      run('umount', ['-l', target]);
    } catch {
      /* not mounted */
    }
  }
}

/** Lists a mounted tree exactly like the fixtures' expected.tsv (header line included). */
export function listTree(root: string): string {
  return run('python3', [fixture('erofs-listing.py'), root]);
}

export function makeTempDir(prefix = 'erofs-vmdk-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs `body` with a temp dir that is removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = makeTempDir();
  try {
    return await body(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Mounts a single EROFS image (file) read-only through a loop device and lists it. */
export async function listErofsImage(image: string, deviceOptions: string[] = []): Promise<string> {
  return withTempDir(async (dir) => {
    const loops: string[] = [];
    const target = path.join(dir, 'mnt');
    fs.mkdirSync(target);
    try {
      const main = attachLoop(image);
      loops.push(main);
      run('mount', ['-t', 'erofs', '-o', ['ro', ...deviceOptions].join(','), main, target]);
      try {
        return listTree(target);
      } finally {
        unmount(target);
      }
    } finally {
      loops.forEach(detachLoop);
    }
  });
}

/**
 * The flat path a VM takes: `qemu-img convert -f vmdk -O raw` of the descriptor,
 * the raw image on one read-only loop device, mounted as EROFS with no device= options.
 */
export async function listFlatDescriptor(descriptor: string): Promise<string> {
  return withTempDir(async (dir) => {
    const raw = path.join(dir, 'disk.raw');
    run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', descriptor, raw]);
    return listErofsImage(raw);
  });
}

/** fsmeta with one read-only loop device per layer blob, the way containerd mounts it. */
export async function listMultiDevice(fsmeta: string, layers: string[]): Promise<string> {
  const loops = layers.map((layer) => attachLoop(layer));
  try {
    return await listErofsImage(fsmeta, loops.map((l) => `device=${l}`));
  } finally {
    loops.forEach(detachLoop);
  }
}

/**
 * The overlay oracle: every layer mounted read-only on its own, stacked with a
 * read-only overlayfs (top first in lowerdir). A single layer gets an empty
 * bottom lower, because overlayfs needs two lowers without an upper.
 */
export async function listOverlay(layersBottomFirst: string[]): Promise<string> {
  return withTempDir(async (dir) => {
    const loops: string[] = [];
    const mounted: string[] = [];
    try {
      const lowers: string[] = [];
      layersBottomFirst.forEach((layer, i) => {
        const target = path.join(dir, `l${i}`);
        fs.mkdirSync(target);
        const loop = attachLoop(layer);
        loops.push(loop);
        run('mount', ['-t', 'erofs', '-o', 'ro', loop, target]);
        mounted.push(target);
        lowers.push(target);
      });
      if (lowers.length === 1) {
        const empty = path.join(dir, 'empty');
        fs.mkdirSync(empty);
        lowers.unshift(empty);
      }
      const merged = path.join(dir, 'merged');
      fs.mkdirSync(merged);
      run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${[...lowers].reverse().join(':')}`, merged]);
      mounted.push(merged);
      return listTree(merged);
    } finally {
      mounted.reverse().forEach(unmount);
      loops.forEach(detachLoop);
    }
  });
}
