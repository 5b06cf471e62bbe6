/**
 * Test harness for the VM tests: runs hack/vm-run as a process (it is the
 * reference consumer, so the tests use it exactly as an operator would),
 * writes flat descriptors with the product's own CLI, and builds a tiny
 * busybox image so a command can really run chrooted in the guest.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { cliPath, repoRoot } from '../support/fixtures';
import type { Mount } from '../../src/mount/index';

export const vmRunPath = path.join(repoRoot, 'hack', 'vm-run');

/** TCG boots here take ~5 s; anything past 5 minutes is a failure, never a skip. */
export const VM_TIMEOUT_SECONDS = 300;
export const VM_TEST_TIMEOUT_MS = (VM_TIMEOUT_SECONDS + 60) * 1000;

export interface VmRunOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function vmRun(args: string[], stdin?: string): Promise<VmRunOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(vmRunPath, ['--timeout', String(VM_TIMEOUT_SECONDS), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

export interface VmJsonResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  marks: Record<string, number>;
  hostMsToMount?: number;
  wallMs: number;
  /** vm-run's own stderr (its log; with --print-qemu, the QEMU command line). */
  log: string;
}

/** Runs vm-run with --json and fails loudly (with vm-run's stderr) if it did not produce a result. */
export async function vmRunJson(args: string[], stdin?: string): Promise<VmJsonResult> {
  const out = await vmRun(['--json', ...args], stdin);
  if (out.code === 125 || !out.stdout.trim().startsWith('{')) {
    throw new Error(`vm-run failed (exit ${out.code}):\n${out.stderr}`);
  }
  return { ...(JSON.parse(out.stdout) as Omit<VmJsonResult, 'log'>), log: out.stderr };
}

/** The `-drive` values of the QEMU command line vm-run printed (--print-qemu), as option maps. */
export function qemuDrives(log: string): Map<string, string>[] {
  const line = log.split('\n').find((l) => l.startsWith('qemu-system-') || l.startsWith('-drive '));
  if (!line) throw new Error(`no QEMU command line in vm-run's output (--print-qemu missing?):\n${log}`);
  const words = line.split(' ');
  return words.flatMap((w, i) =>
    w === '-drive' ? [new Map(words[i + 1].split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]))] : [],
  );
}

/**
 * The mount contract a test daemon's profile was configured for, from the
 * daemon's own effective configuration (`erofs-vmdk config dump`): the
 * profile's `contract` key, or 1 for a daemon that has no such key.
 */
export function configuredContract(configPath: string, profile: string): 1 | 2 {
  const out = execFileSync('node', [cliPath, 'config', 'dump', '--config', configPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const config = parseToml(out) as { profiles?: Record<string, { rewrite?: boolean; contract?: unknown }> };
  const p = config.profiles?.[profile];
  if (!p?.rewrite) throw new Error(`profile ${profile} is not a rewriting profile of ${configPath}:\n${out}`);
  const contract = p.contract ?? 1;
  if (contract !== 1 && contract !== 2) throw new Error(`profile ${profile} has contract ${String(contract)}`);
  return contract;
}

export const vmdkMount = (descriptor: string): Mount => ({
  type: 'vmdk',
  source: descriptor,
  target: '',
  options: ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'],
});

/** The contract v2 entry (docs/contract-v2.md): a view, directory mode, or block mode. */
export function v2Mount(
  descriptor: string,
  mode: { view: true } | { upperdir: string; workdir: string } | { image: string; size: number },
): Mount {
  const common = ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];
  const options =
    'view' in mode
      ? ['ro', ...common]
      : 'upperdir' in mode
        ? [...common, `upperdir=${mode.upperdir}`, `workdir=${mode.workdir}`]
        : [...common, `X-erofs-vmdk.upper-image=${mode.image}`, `X-erofs-vmdk.upper-image-size=${mode.size}`, 'X-erofs-vmdk.upper-image-fs=ext4'];
  return { type: 'fuse.erofs-vmdk-mount', source: descriptor, target: '', options };
}

export const overlayMount = (dir: string, lowerIndex = 0): Mount => ({
  type: 'format/mkdir/overlay',
  source: 'overlay',
  target: '',
  options: [`workdir=${path.join(dir, 'work')}`, `upperdir=${path.join(dir, 'fs')}`, `lowerdir={{ mount ${lowerIndex} }}`],
});

/**
 * Writes a flat descriptor with the product's CLI: `erofs-vmdk vmdk --fsmeta F
 * --device L1 …` (or `--layer L` for a one-layer image without fsmeta).
 */
export function writeDescriptor(input: { fsmeta?: string; layers: string[] }, out: string): void {
  const args = [cliPath, 'vmdk', ...(input.fsmeta ? ['--fsmeta', input.fsmeta] : []), ...input.layers.flatMap((l) => [input.fsmeta ? '--device' : '--layer', l]), '--out', out];
  try {
    execFileSync('node', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    throw new Error(`erofs-vmdk ${args.slice(1).join(' ')} failed: ${String((err as { stderr?: string }).stderr ?? err)}`);
  }
}

/**
 * A one-layer EROFS image with busybox-static as /bin/sh (Debian's mkfs.erofs
 * 1.5 from a folder). A one-layer image needs no fsmeta: the descriptor has
 * one extent, the layer itself.
 */
export function buildBusyboxImage(dir: string, extra: Record<string, string> = {}): string {
  const tree = path.join(dir, 'tree');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(tree, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(tree, 'bin', 'busybox'));
  fs.chmodSync(path.join(tree, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'ls', 'echo', 'sha256sum', 'find', 'mount', 'stat']) {
    fs.symlinkSync('busybox', path.join(tree, 'bin', applet));
  }
  for (const [file, content] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
    fs.writeFileSync(path.join(tree, file), content);
  }
  const image = path.join(dir, 'busybox.erofs');
  execFileSync('mkfs.erofs', ['--quiet', '-T0', '--all-root', image, tree], { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.rmSync(tree, { recursive: true, force: true });
  return image;
}

/** path -> sha256 of every regular file in an erofs-listing.py TSV. */
export function regularFiles(tsv: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const line of tsv.split('\n')) {
    const cols = line.split('\t');
    if (cols[1] === 'f') files.set(cols[0], cols[6]);
  }
  return files;
}
