/**
 * Runs util-linux/e2fsprogs commands with argument arrays (never a shell) and
 * turns a failure into one line naming the command and its own message.
 * `run` is asynchronous so independent steps (one `losetup` per layer, the
 * upper image's mkfs) overlap; `runSync` is for the rollback.
 */
import { spawn, spawnSync } from 'node:child_process';
import { EXIT_FAILED, HelperError } from './errors';

/** containerd and mount.fuse3 may hand us a PATH without the sbin directories. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

let childEnv: NodeJS.ProcessEnv | undefined;
function env(): NodeJS.ProcessEnv {
  if (!childEnv) {
    const p = process.env.PATH ? `${process.env.PATH}:${SYSTEM_PATH}` : SYSTEM_PATH;
    childEnv = { ...process.env, PATH: p, LC_ALL: 'C' };
  }
  return childEnv;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.length ? lines[lines.length - 1] : '';
}

function failure(what: string, cmd: string, args: string[], status: number | null, stderr: string): HelperError {
  const why = lastLine(stderr) || (status === null ? 'could not run' : `exit status ${status}`);
  return new HelperError(`${what}: ${cmd} ${args.join(' ')}: ${why}`, EXIT_FAILED);
}

/** Runs `cmd args…` and resolves to its stdout; a failure rejects (exit 1) with `what` and the command's message. */
export function run(what: string, cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      reject(failure(what, cmd, args, null, err.code ?? err.message));
    });
    child.on('close', (status) => {
      if (settled) return;
      settled = true;
      if (status === 0) resolve(stdout);
      else reject(failure(what, cmd, args, status, stderr));
    });
  });
}

/** Synchronous `run` (rollback, and checks made before anything is touched). */
export function runSync(what: string, cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env(), stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  if (r.error) throw failure(what, cmd, args, null, (r.error as NodeJS.ErrnoException).code ?? r.error.message);
  if (r.status !== 0) throw failure(what, cmd, args, r.status, r.stderr);
  return r.stdout;
}

/** Waits for every promise, then rethrows the first failure (nothing may still run when the rollback starts). */
export async function settleAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
