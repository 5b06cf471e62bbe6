/**
 * The pieces of a vm-run guest that can be checked without booting: the
 * initramfs cpio writer (read back by GNU cpio), the console protocol (a
 * command cannot fake the markers; stray kernel lines do not corrupt the
 * output), argument quoting, and the kernel module selection.
 */
import { execFileSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { buildCpio } from '../../hack/vm/cpio';
import { parseGuestConsole } from '../../hack/vm/guest-console';
import { shellQuote } from '../../hack/vm/guest-init';
import { withTempDir } from '../support/kernel-mounts';

describe('initramfs cpio (newc)', () => {
  it('is read back by GNU cpio with the same names, modes, contents and symlinks', async () => {
    await withTempDir((dir) => {
      const archive = buildCpio([
        { kind: 'dir', path: 'bin' },
        { kind: 'file', path: 'bin/tool', data: Buffer.from([0, 1, 2, 255]), mode: 0o755 },
        { kind: 'symlink', path: 'bin/sh', target: 'tool' },
        { kind: 'dir', path: 'etc', mode: 0o700 },
        { kind: 'file', path: 'etc/odd-length', data: 'abc' },
        { kind: 'file', path: 'init', data: '#!/bin/sh\n', mode: 0o755 },
      ]);
      const out = path.join(dir, 'out');
      fs.mkdirSync(out);
      execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { cwd: out, input: archive });
      assert.deepEqual([...fs.readFileSync(path.join(out, 'bin/tool'))], [0, 1, 2, 255]);
      assert.equal(fs.statSync(path.join(out, 'bin/tool')).mode & 0o7777, 0o755);
      assert.equal(fs.readlinkSync(path.join(out, 'bin/sh')), 'tool');
      assert.equal(fs.statSync(path.join(out, 'etc')).mode & 0o7777, 0o700);
      assert.equal(fs.readFileSync(path.join(out, 'etc/odd-length'), 'utf8'), 'abc');
      assert.equal(fs.readFileSync(path.join(out, 'init'), 'utf8'), '#!/bin/sh\n');
    });
  });

  it('refuses paths that would escape the archive root', () => {
    assert.throws(() => buildCpio([{ kind: 'file', path: '../x', data: '' }]), /invalid path/);
  });
});

describe('guest console protocol', () => {
  const nonce = 'VMRUN-0123456789abcdef';
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('decodes stdout, stderr, exit status and marks; ignores kernel lines and other nonces', () => {
    const text = [
      `${nonce}:MARK kernel-up 1.25`,
      `${nonce}:MARK erofs-mounted 1.50`,
      `${nonce}:BEGIN`,
      `${nonce}:STDOUT`,
      b64('line one\n'),
      '[    2.000000] random: crng init done',
      b64('line two\r\n'),
      `VMRUN-ffffffffffffffff:END 0`,
      `${nonce}:STDERR`,
      b64('oops\n'),
      `${nonce}:END 3`,
    ].join('\n');
    const report = parseGuestConsole(text, nonce);
    assert.equal(report.exitCode, 3);
    // 'line one\n' is 9 bytes = 12 base64 chars without padding, so the two chunks join like one stream.
    assert.equal(report.stdout!.toString(), 'line one\nline two\r\n');
    assert.equal(report.marks.get('erofs-mounted'), 1.5);
    assert.equal(report.began, true);
    assert.equal(report.stderr!.toString(), 'oops\n');
  });

  it('reports a guest failure with its dmesg tail', () => {
    const report = parseGuestConsole(`${nonce}:FAIL mount -t erofs failed\n${nonce}:DMESG [ 1.0] erofs: bad\n`, nonce);
    assert.equal(report.exitCode, undefined);
    assert.match(report.failure!, /^mount -t erofs failed\n  guest dmesg:\n    \[ 1\.0\] erofs: bad$/);
  });
});

describe('command quoting for the guest shell', () => {
  it('passes every argument through sh unchanged', () => {
    const args = ["it's", 'a b', '$HOME', '"q"', '\\n', ''];
    const printed = execFileSync('sh', ['-c', `printf '%s\\0' ${args.map(shellQuote).join(' ')}`]);
    assert.deepEqual(printed.toString('utf8').split('\0').slice(0, -1), args);
  });
});
