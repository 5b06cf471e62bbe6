/** The configuration: defaults < file < flags, zod validation, errors naming key and file, reference TOML. */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'smol-toml';
import { ConfigError, configSchema, defaultConfig, loadConfig, parseConfigFlags, renderReferenceToml } from '../../src/config';
import { cliPath } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';

function withConfigFile(text: string, body: (file: string) => void): void {
  const dir = makeTempDir();
  try {
    const file = path.join(dir, 'config.toml');
    fs.writeFileSync(file, text);
    body(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const absentDefault = '/nonexistent/erofs-vmdk/config.toml';

describe('defaults', () => {
  test('are valid and carry both default profiles', () => {
    const c = configSchema.parse(defaultConfig());
    assert.equal(c.address, '/run/erofs-vmdk/erofs-vmdk.sock');
    assert.equal(c.root, '/var/lib/erofs-vmdk');
    assert.equal(c.backend, 'embedded');
    assert.deepEqual(c.profiles, { 'erofs-vmdk': { rewrite: true, contract: 2 }, 'erofs-vmdk-host': { rewrite: false, contract: 2 } });
    assert.deepEqual(c.host_mount_roots, []);
  });

  test('a missing default config file is fine; a missing explicit one is an error naming it', () => {
    assert.deepEqual(loadConfig({ defaultConfigPath: absentDefault }).config, defaultConfig());
    assert.equal(loadConfig({ defaultConfigPath: absentDefault }).file, undefined);
    assert.throws(() => loadConfig({ configPath: '/nonexistent/x.toml' }), (e: Error) => e instanceof ConfigError && e.message.includes('/nonexistent/x.toml'));
  });
});

describe('precedence: flags > file > defaults', () => {
  test('file overrides defaults key by key, flags override the file', () => {
    withConfigFile('root = "/srv/ev"\nlog_level = "warn"\n[remote]\nsnapshotter = "erofs"\n', (file) => {
      const fromFile = loadConfig({ configPath: file }).config;
      assert.equal(fromFile.root, '/srv/ev');
      assert.equal(fromFile.log_level, 'warn');
      assert.equal(fromFile.remote.snapshotter, 'erofs');
      assert.equal(fromFile.remote.connect_timeout_ms, 1500, 'sub-table keys not in the file keep their defaults');
      const flags = parseConfigFlags(['--config', file, '--log-level', 'debug', '--remote-snapshotter', 'other']);
      const both = loadConfig(flags).config;
      assert.equal(both.root, '/srv/ev');
      assert.equal(both.log_level, 'debug');
      assert.equal(both.remote.snapshotter, 'other');
    });
  });

  test('a [profiles] table replaces the default set', () => {
    withConfigFile('[profiles.vm]\nrewrite = true\n', (file) => {
      assert.deepEqual(loadConfig({ configPath: file }).config.profiles, { vm: { rewrite: true, contract: 2 } }, 'contract defaults to 2');
    });
  });
});

describe('errors name the key and the file', () => {
  const cases: [string, string, string][] = [
    ['unknown top-level key', 'adress = "/x.sock"\n', 'key "adress": unknown key'],
    ['unknown sub-key', '[remote]\nadress = "/x"\n', 'key "remote.adress": unknown key'],
    ['wrong type', 'log_level = 3\n', 'key "log_level"'],
    ['bad enum', 'backend = "cloud"\n', 'key "backend"'],
    ['relative path', 'root = "var/lib"\n', 'key "root": root must be an absolute path'],
    ['bad profile value', '[profiles.x]\nrewrite = "yes"\n', 'key "profiles.x.rewrite"'],
    ['too small timeout', '[remote]\nconnect_timeout_ms = 1\n', 'key "remote.connect_timeout_ms"'],
    ['negative Mounts memory', '[remote]\nmounts_cache_ttl_ms = -1\n', 'key "remote.mounts_cache_ttl_ms"'],
    ['remote without address', 'backend = "remote"\n', 'key "remote.address": is required when backend = "remote"'],
    ['block mode with legacy mounts', '[embedded]\ndefault_size = 1048576\n', 'key "embedded.default_size": block mode'],
    ['bad mount style', '[embedded]\nmount_style = "fancy"\n', 'key "embedded.mount_style"'],
    ['invalid TOML', 'root = \n', 'invalid TOML'],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => {
      withConfigFile(text, (file) => {
        assert.throws(
          () => loadConfig({ configPath: file }),
          (e: Error) => e instanceof ConfigError && e.message.includes(file) && e.message.includes(expected),
        );
      });
    });
  }

  test('a bad flag names the flag', () => {
    assert.throws(
      () => loadConfig({ ...parseConfigFlags(['--log-level', 'loud']), defaultConfigPath: absentDefault }),
      (e: Error) => e instanceof ConfigError && e.message.includes('flag --log-level (key "log_level")'),
    );
    assert.throws(() => parseConfigFlags(['--no-such-flag']), ConfigError);
  });
});

describe('reference TOML (`config default`)', () => {
  test('parses back to exactly the defaults', () => {
    const parsed = configSchema.parse(parse(renderReferenceToml()));
    assert.deepEqual(parsed, defaultConfig());
  });

  test('every key is preceded by a comment', () => {
    const lines = renderReferenceToml().split('\n');
    const keyLines = lines.map((l, i) => [l, i] as const).filter(([l]) => /^[a-z_]+ = /.test(l));
    assert.ok(keyLines.length >= 12);
    for (const [line, i] of keyLines) assert.match(lines[i - 1], /^# \S/, `no comment above "${line}"`);
  });

  test('the CLI prints it, and dump prints the effective config', () => {
    const reference = execFileSync(process.execPath, [cliPath, 'config', 'default'], { encoding: 'utf8' });
    assert.equal(reference, renderReferenceToml());
    withConfigFile('root = "/srv/ev"\n', (file) => {
      const dump = execFileSync(process.execPath, [cliPath, 'config', 'dump', '--config', file, '--address', '/tmp/a.sock'], { encoding: 'utf8' });
      const parsed = configSchema.parse(parse(dump));
      assert.equal(parsed.root, '/srv/ev');
      assert.equal(parsed.address, '/tmp/a.sock');
      assert.match(dump, new RegExp(`file: ${file.replace(/[/.]/g, '\\$&')}`));
    });
  });

  test('the CLI reports config errors with exit code 2', () => {
    withConfigFile('log_level = "loud"\n', (file) => {
      const r = spawnSync(process.execPath, [cliPath, 'config', 'check', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /key "log_level"/);
      const serve = spawnSync(process.execPath, [cliPath, 'serve', '--config', file], { encoding: 'utf8' });
      assert.equal(serve.status, 2);
      assert.match(serve.stderr, new RegExp(`config file ${file.replace(/[/.]/g, '\\$&')}: key "log_level"`));
    });
  });
});
