/**
 * Host mounts the embedded backend makes itself (legacy mount style: each
 * committed layer.erofs mounted read-only on its snapshot's fs/).
 *
 * The kernel mounts an EROFS image straight from a regular file since 6.12
 * ("file-backed mount"), but util-linux's mount(8) always puts a regular file
 * on a loop device first. So the file-backed mount is made with the mount(2)
 * system call through python3's ctypes (one python process for a whole batch);
 * when the kernel refuses it (older kernels: ENOTBLK / EINVAL) we fall back
 * to `mount -o ro,loop`, whose loop device is auto-cleared on unmount.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { SnapshotterError, failedPrecondition } from '../../errdefs';

const execFileAsync = promisify(execFile);

/** Mount points currently mounted (from /proc/self/mountinfo, octal escapes decoded). */
export function mountPoints(): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4) out.push(fields[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Mount points equal to `dir` or below it, deepest first (the order to unmount them). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return mountPoints()
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/**
 * A long-lived python3 process making mount(2) calls: starting python costs
 * 0.2-0.4 s here, a mount through the running helper well under 1 ms.
 * Protocol: one JSON line per request `[blob, target]`, one JSON line per
 * answer `[errno, message]`, in order.
 */
const HELPER_SCRIPT = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for line in sys.stdin:
    blob, target = json.loads(line)
    r = libc.mount(blob.encode(), target.encode(), b"erofs", 1, b"")  # MS_RDONLY
    e = ctypes.get_errno() if r != 0 else 0
    sys.stdout.write(json.dumps([e, os.strerror(e) if e else ""]) + "\\n")
    sys.stdout.flush()
`;

type Answer = [number, string];

class FileBackedMounter {
  private child: ChildProcess | undefined;
  private unavailable = false;
  private buffer = '';
  private readonly waiting: ((a: Answer) => void)[] = [];

  async mount(blob: string, target: string): Promise<Answer> {
    const child = this.start();
    if (!child) return [-1, 'python3 is not available for file-backed mounts'];
    return new Promise<Answer>((resolve) => {
      this.waiting.push(resolve);
      this.setRef(true);
      child.stdin!.write(`${JSON.stringify([blob, target])}\n`);
    });
  }

  private start(): ChildProcess | undefined {
    if (this.unavailable) return undefined;
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const child = spawn('python3', ['-S', '-u', '-c', HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.on('error', () => {
      this.unavailable = true;
      this.fail('python3 could not be started');
    });
    child.on('exit', () => {
      if (this.child === child) this.child = undefined;
      this.fail('mount helper exited');
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const resolve = this.waiting.shift();
        if (resolve) resolve(JSON.parse(line) as Answer);
      }
      if (this.waiting.length === 0) this.setRef(false);
    });
    this.child = child;
    this.setRef(false);
    return child;
  }

  /** The helper must not keep the process alive while idle. */
  private setRef(ref: boolean): void {
    const c = this.child;
    if (!c) return;
    const handles = [c, c.stdin, c.stdout] as unknown as { ref?: () => void; unref?: () => void }[];
    for (const h of handles) (ref ? h?.ref : h?.unref)?.call(h);
  }

  private fail(message: string): void {
    this.buffer = '';
    for (const resolve of this.waiting.splice(0)) resolve([-1, message]);
  }
}

const fileBacked = new FileBackedMounter();

export interface LayerMount {
  blob: string;
  target: string;
}

/**
 * Mounts each blob read-only on its target (file-backed, loop fallback).
 * Targets already mounted are skipped, so this is idempotent.
 */
export async function mountErofsLayers(layers: LayerMount[]): Promise<void> {
  const mounted = new Set(mountPoints());
  const failures: string[] = [];
  for (const layer of layers) {
    if (mounted.has(layer.target)) continue;
    const [errno, message] = await fileBacked.mount(layer.blob, layer.target);
    if (errno === 0) continue;
    try {
      await execFileAsync('mount', ['-t', 'erofs', '-o', 'ro,loop', layer.blob, layer.target]);
    } catch (err) {
      failures.push(`${layer.blob} on ${layer.target}: file-backed mount failed (${message}), loop mount failed (${stderrOf(err)})`);
    }
  }
  if (failures.length > 0) {
    throw failedPrecondition(`cannot mount EROFS layer(s) read-only: ${failures.join('; ')}`);
  }
}

/** Unmounts everything at or below `dir`, deepest first; lazily when busy. */
export function unmountUnder(dir: string): void {
  for (const target of mountsUnder(dir)) {
    try {
      execFileSync('umount', [target], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      try {
        // Busy (an overlay of a removed child is still mounted somewhere): detach it lazily.
        execFileSync('umount', ['-l', target], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch {
        throw new SnapshotterError('FailedPrecondition', `cannot unmount ${target}: ${stderrOf(err)}`);
      }
    }
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message?: string };
  const text = e.stderr ? e.stderr.toString().trim() : '';
  return text || e.message || String(err);
}
