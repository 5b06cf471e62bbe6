import { spawnSync } from 'node:child_process';
import { cliPath } from '../support/fixtures';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI launcher (bin/erofs-vmdk.js) in a child process. */
export function runCli(args: string[]): CliResult {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
