/** plugin/: the containerd snippets, the unit and the example config agree with the daemon's defaults. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { parse } from 'smol-toml';
import { defaultConfig, loadConfig } from '../../src/config';
import { repoRoot } from '../support/fixtures';

const plugin = (f: string) => path.join(repoRoot, 'plugin', f);
type Table = Record<string, unknown>;

for (const file of ['containerd-2.x.toml', 'containerd-1.7.toml']) {
  test(`${file}: proxy plugins for both default profiles at the default socket, exports.root = the default root`, () => {
    const doc = JSON.parse(JSON.stringify(parse(fs.readFileSync(plugin(file), 'utf8')))) as Table;
    const defaults = defaultConfig();
    const proxies = doc.proxy_plugins as Record<string, Table>;
    assert.deepEqual(Object.keys(proxies).sort(), Object.keys(defaults.profiles).sort());
    for (const p of Object.values(proxies)) {
      assert.equal(p.type, 'snapshot');
      assert.equal(p.address, defaults.address);
      assert.deepEqual(p.exports, { root: defaults.root });
    }
    const plugins = doc.plugins as Record<string, Table>;
    const unpack = plugins['io.containerd.transfer.v1.local'].unpack_config as Table[];
    assert.ok(unpack.some((u) => u.snapshotter === 'erofs-vmdk'));
    if (file === 'containerd-2.x.toml') {
      assert.ok(unpack.every((u) => u.differ === 'erofs'));
      const runtimes = ((plugins['io.containerd.cri.v1.runtime'].containerd as Table).runtimes as Record<string, Table>);
      assert.equal(runtimes['vm-erofs-vmdk'].snapshotter, 'erofs-vmdk');
    } else {
      const runtimes = ((plugins['io.containerd.grpc.v1.cri'].containerd as Table).runtimes as Record<string, Table>);
      assert.equal(runtimes['vm-erofs-vmdk'].snapshotter, 'erofs-vmdk');
    }
  });
}

test('erofs-vmdk.service: starts before containerd, restarts on failure, cleans nothing up on stop', () => {
  const unit = fs.readFileSync(plugin('erofs-vmdk.service'), 'utf8');
  assert.match(unit, /^Before=containerd\.service$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^ExecStart=\S+ serve --config \/etc\/erofs-vmdk\/config\.toml$/m);
  assert.doesNotMatch(unit, /^(ExecStopPost|RuntimeDirectory|StateDirectory)=/m);
});

test('plugin/config.toml is a valid erofs-vmdk configuration', () => {
  const { config } = loadConfig({ configPath: plugin('config.toml') });
  assert.equal(config.backend, 'embedded');
});
