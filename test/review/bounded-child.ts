import { spawnSync } from 'node:child_process';
import { cliPath } from '../support/fixtures';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The child was killed by the bound: it hung (a FIFO open, a backtracking regexp). */
  timedOut: boolean;
}

/**
 * Runs something that used to hang in a child process with a hard bound, so a
 * regression fails the test instead of freezing the test runner (a blocked
 * synchronous open or regexp cannot be interrupted in-process).
 */
function bounded(args: string[], timeoutMs: number): ChildResult {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, timedOut: r.signal === 'SIGKILL' };
}

export function runCliBounded(args: string[], timeoutMs = 15_000): ChildResult {
  return bounded([cliPath, ...args], timeoutMs);
}

/** Runs a CommonJS script (it may require files of dist/ by absolute path). */
export function runScriptBounded(script: string, timeoutMs = 15_000): ChildResult {
  return bounded(['-e', script], timeoutMs);
}
