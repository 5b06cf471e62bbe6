/**
 * Reads what the guest init printed on the serial console: timing marks,
 * a failure line, and the command's base64-encoded stdout/stderr and exit
 * status, all prefixed with the run's nonce.
 */

export interface GuestReport {
  /** Guest uptime (seconds) at each mark: kernel-up, modules-loaded, erofs-mounted, rootfs-ready, command-done. */
  marks: Map<string, number>;
  /** Set when init gave up (a disk missing, a mount failing), with the guest's dmesg tail. */
  failure?: string;
  began: boolean;
  exitCode?: number;
  stdout?: Buffer;
  stderr?: Buffer;
}

export function parseGuestConsole(consoleText: string, nonce: string): GuestReport {
  const report: GuestReport = { marks: new Map(), began: false };
  const prefix = `${nonce}:`;
  let section: 'stdout' | 'stderr' | undefined;
  const b64: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
  const dmesg: string[] = [];
  for (const line of consoleText.split('\n')) {
    if (line.startsWith(prefix)) {
      const rest = line.slice(prefix.length);
      const [word, ...args] = rest.split(' ');
      if (word === 'MARK' && args.length === 2) report.marks.set(args[0], Number(args[1]));
      else if (word === 'FAIL') report.failure = args.join(' ');
      else if (word === 'DMESG') dmesg.push(args.join(' '));
      else if (word === 'BEGIN') report.began = true;
      else if (word === 'STDOUT') section = 'stdout';
      else if (word === 'STDERR') section = 'stderr';
      else if (word === 'END') {
        section = undefined;
        report.exitCode = Number(args[0]);
      }
      continue;
    }
    // Only base64 lines count; a stray kernel message cannot corrupt the output silently.
    if (section && /^[A-Za-z0-9+/=]+$/.test(line)) b64[section].push(line);
  }
  if (report.exitCode !== undefined) {
    report.stdout = Buffer.from(b64.stdout.join(''), 'base64');
    report.stderr = Buffer.from(b64.stderr.join(''), 'base64');
  }
  if (report.failure && dmesg.length) report.failure += `\n  guest dmesg:\n    ${dmesg.join('\n    ')}`;
  return report;
}
