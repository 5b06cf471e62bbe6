/**
 * Test harness for the VM tests: runs hack/vm-run as a process (it is the
 * reference consumer, so the tests use it exactly as an operator would),
 * writes flat descriptors with the product's own CLI, and builds a tiny
 * busybox image so a command can really run chrooted in the guest.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
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
}

/** Runs vm-run with --json and fails loudly (with vm-run's stderr) if it did not produce a result. */
export async function vmRunJson(args: string[], stdin?: string): Promise<VmJsonResult> {
  const out = await vmRun(['--json', ...args], stdin);
  if (out.code === 125 || !out.stdout.trim().startsWith('{')) {
    throw new Error(`vm-run failed (exit ${out.code}):\n${out.stderr}`);
  }
  return JSON.parse(out.stdout) as VmJsonResult;
}

export const vmdkMount = (descriptor: string): Mount => ({
  type: 'vmdk',
  source: descriptor,
  target: '',
  options: ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'],
});

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
