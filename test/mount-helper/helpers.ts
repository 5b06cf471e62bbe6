/**
 * Shared set-up of the host mount helper tests: a temp trust root holding
 * copies of the fixture images, descriptors rendered by the project's own
 * renderer, a config file naming the root, and probes for what is left
 * mounted or attached under the root afterwards.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareFlatDisk } from '../../src/erofs';
import { renderDescriptor, type Extent } from '../../src/vmdk';
import { fixture, repoRoot } from '../support/fixtures';
import { run } from '../support/kernel-mounts';

export const helperBin = path.join(repoRoot, 'bin', 'erofs-vmdk-mount');
export const BASIC_LAYERS = ['layer1.erofs', 'layer2.erofs', 'layer3.erofs', 'layer4.erofs'];
export const CONTRACT = ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];
export const VIEW_OPTIONS = ['ro', ...CONTRACT].join(',');

export interface TestRoot {
  /** realpath of the temp root (also `root` in the config). */
  root: string;
  config: string;
  env: NodeJS.ProcessEnv;
  /** The 4-layer basic fixture: descriptor, fsmeta and layers (copies inside root). */
  basic: { vmdk: string; fsmeta: string; layers: string[] };
  /** The one-layer `single` fixture as a one-extent descriptor. */
  single: { vmdk: string; layer: string };
  /** A new empty directory inside root. */
  dir(name: string): string;
  cleanup(): void;
}

export function writeConfig(file: string, root: string, extra = ''): void {
  fs.writeFileSync(file, `# test config\nroot = ${JSON.stringify(root)}\nlog_level = "info"\n${extra}`);
}

export function makeTestRoot(): TestRoot {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'evm-helper-')));
  const layersDir = path.join(root, 'layers');
  fs.mkdirSync(layersDir);
  for (const f of ['fsmeta.erofs', ...BASIC_LAYERS]) fs.copyFileSync(fixture('basic', f), path.join(layersDir, f));
  const singleLayer = path.join(layersDir, 'single.erofs');
  fs.copyFileSync(fixture('single', 'layer1.erofs'), singleLayer);
  fs.mkdirSync(path.join(root, 'vmdk'));
  const fsmeta = path.join(layersDir, 'fsmeta.erofs');
  const layers = BASIC_LAYERS.map((l) => path.join(layersDir, l));
  const basicVmdk = path.join(root, 'vmdk', 'basic.vmdk');
  fs.writeFileSync(basicVmdk, renderDescriptor(prepareFlatDisk({ fsmeta, layers }, { repairDir: path.join(root, 'state') }).extents));
  const singleVmdk = path.join(root, 'vmdk', 'single.vmdk');
  fs.writeFileSync(singleVmdk, renderDescriptor(prepareFlatDisk({ layers: [singleLayer] }, { repairDir: path.join(root, 'state') }).extents));
  const config = path.join(root, 'config.toml');
  writeConfig(config, root);
  let n = 0;
  return {
    root,
    config,
    env: { ...process.env, EROFS_VMDK_CONFIG: config },
    basic: { vmdk: basicVmdk, fsmeta, layers },
    single: { vmdk: singleVmdk, layer: singleLayer },
    dir(name: string): string {
      const d = path.join(root, `${name}-${++n}`);
      fs.mkdirSync(d);
      return d;
    },
    cleanup(): void {
      for (const m of mountsUnder(root).reverse()) spawnSync('umount', ['-l', m]);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Writes a descriptor for `extents` (rendered by src/vmdk) at `file`. */
export function writeDescriptor(file: string, extents: Extent[]): string {
  fs.writeFileSync(file, renderDescriptor(extents));
  return file;
}

export function sectorsOf(file: string): number {
  return Math.ceil(fs.statSync(file).size / 512);
}

export interface HelperResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/erofs-vmdk-mount as mount.fuse3 would: `SRC TARGET -o OPTS`. */
export function runHelper(env: NodeJS.ProcessEnv, args: string[]): HelperResult {
  const r = spawnSync(helperBin, args, { encoding: 'utf8', env, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Mount points at or under `dir`, from /proc/self/mountinfo (octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** `losetup -a` lines whose backing file is under `dir`. */
export function loopsUnder(dir: string): string[] {
  return run('losetup', ['-a'])
    .split('\n')
    .filter((l) => l.includes(`(${dir}/`));
}

/** Loop devices are released asynchronously after the last unmount: poll briefly. */
export async function settledLoopsUnder(dir: string, timeoutMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const loops = loopsUnder(dir);
    if (loops.length === 0 || Date.now() > deadline) return loops;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The private mount points directory must be empty after every helper run. */
export function privateDirsLeft(root: string): string[] {
  const dir = path.join(root, 'host-mounts');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}
