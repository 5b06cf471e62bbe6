/**
 * Layer sets the merge tests build with mkfs.erofs 1.5, each exercising the
 * overlay rules and on-disk shapes named in its comments.
 */
import { buildLayer, type LayerTree } from './build-layer';

const T = 1700000000;

function bigDirectory(count: number, mtime: number): LayerTree {
  const tree: LayerTree = { big: { type: 'dir', mtime } };
  for (let i = 0; i < count; i++) {
    const name = `big/entry-with-a-fairly-long-name-${String(i).padStart(3, '0')}`;
    tree[name] = { type: 'file', size: 10 + (i % 7), mtime };
  }
  return tree;
}

/** Bottom layer: every entry type, sizes around block boundaries, xattrs, hard links, a multi-block dir. */
export function featureLayer1(): LayerTree {
  const t = T;
  const shared = { 'user.shared': 'same-value-everywhere' };
  return {
    '.': { type: 'dir', mode: 0o755, mtime: t },
    etc: { type: 'dir', mtime: t, xattrs: { 'user.dirnote': 'etc1' } },
    'etc/empty': { type: 'file', size: 0, mtime: t },
    'etc/one': { type: 'file', size: 1, mtime: t },
    'etc/f4095': { type: 'file', size: 4095, mtime: t },
    'etc/f4096': { type: 'file', size: 4096, mtime: t },
    'etc/f4097': { type: 'file', size: 4097, mtime: t },
    'etc/big': { type: 'file', size: 300000, mtime: t },
    'etc/conf': {
      type: 'file',
      content: 'key=value\n',
      mtime: t,
      xattrs: { 'user.a': '1', 'user.b': 'two', 'security.x': 'sec', 'trusted.t': 'tt' },
    },
    'etc/s1': { type: 'file', size: 11, mtime: t, xattrs: shared },
    'etc/s2': { type: 'file', size: 12, mtime: t, xattrs: shared },
    'etc/s3': { type: 'file', size: 13, mtime: t, xattrs: shared },
    'etc/s4': { type: 'file', size: 14, mtime: t, xattrs: shared },
    'etc/nsec': { type: 'file', size: 5, mtime: t, mtimeNs: 500000000 },
    'etc/café': { type: 'file', size: 3, mtime: t },
    'etc/with space': { type: 'file', size: 3, mtime: t },
    'etc/-dash': { type: 'file', size: 3, mtime: t },
    'etc/!bang': { type: 'file', size: 3, mtime: t },
    bin: { type: 'dir', mtime: t },
    'bin/busybox': { type: 'file', size: 1000, mode: 0o755, mtime: t },
    'bin/sh': { type: 'symlink', target: 'busybox', mtime: t },
    'bin/long': { type: 'symlink', target: `/${'very-long-component/'.repeat(15)}end`, mtime: t },
    'usr/lib/a': { type: 'file', size: 5000, mtime: t },
    'usr/lib/a-link': { type: 'hardlink', to: 'usr/lib/a' },
    'usr/lib/b': { type: 'file', size: 77, mtime: t },
    'usr/lib/b-link': { type: 'hardlink', to: 'usr/lib/b' },
    'usr/bin/su': { type: 'file', size: 100, mode: 0o4755, mtime: t },
    dev: { type: 'dir', mtime: t },
    'dev/console': { type: 'chr', major: 5, minor: 1, mode: 0o600, mtime: t },
    'dev/sda': { type: 'blk', major: 8, minor: 0, mode: 0o660, gid: 6, mtime: t },
    'dev/wide': { type: 'chr', major: 300, minor: 70000, mode: 0o600, mtime: t },
    run: { type: 'dir', mtime: t },
    'run/fifo': { type: 'fifo', mode: 0o600, mtime: t },
    'run/sock': { type: 'socket', mode: 0o755, mtime: t },
    ...bigDirectory(400, t),
    gone: { type: 'dir', mtime: t },
    'gone/x': { type: 'file', size: 3, mtime: t },
    'gone/y/z': { type: 'file', size: 3, mtime: t },
    opq: { type: 'dir', mtime: t },
    'opq/a': { type: 'file', size: 3, mtime: t },
    'opq/sub/c': { type: 'file', size: 3, mtime: t },
    m: { type: 'dir', mtime: t },
    'm/b': { type: 'file', size: 3, mtime: t },
    file2dir: { type: 'file', size: 9, mtime: t },
    dir2file: { type: 'dir', mtime: t },
    'dir2file/x': { type: 'file', size: 3, mtime: t },
    'deep/a/b/c/d/e/f/g': { type: 'file', size: 8, mtime: t },
    home: { type: 'dir', mtime: t },
    'home/user': { type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: t },
    'home/user/.profile': { type: 'file', size: 20, uid: 1000, gid: 1000, mtime: t },
    tmp: { type: 'dir', mode: 0o1777, mtime: t },
  };
}

/** Whiteouts, an opaque dir, type changes, attribute changes; built with -T (compact inodes). */
export function featureLayer2(): LayerTree {
  const t = T + 100000;
  return {
    '.': { type: 'dir', mtime: t },
    gone: { type: 'whiteout' },
    opq: { type: 'dir', opaque: true, mtime: t },
    'opq/c': { type: 'file', size: 4, mtime: t },
    m: { type: 'file', size: 6, mtime: t },
    file2dir: { type: 'dir', mtime: t },
    'file2dir/inner': { type: 'file', size: 6, mtime: t },
    dir2file: { type: 'file', size: 7, mtime: t },
    'usr/lib/b-link': { type: 'whiteout' },
    etc: { type: 'dir', mode: 0o700, mtime: t, xattrs: { 'user.dirnote': 'etc2' } },
    'etc/one': { type: 'file', size: 2, mode: 0o600, uid: 1000, mtime: t },
    'etc/f4096': { type: 'whiteout' },
    'big/entry-with-a-fairly-long-name-010': { type: 'whiteout' },
    'big/new-entry-in-layer-2': { type: 'file', size: 5, mtime: t },
    'never-existed': { type: 'whiteout' },
    'home/user': { type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: t },
    'home/user/.profile': { type: 'file', size: 21, uid: 1000, gid: 1000, mtime: t },
  };
}

/** Built WITH inline data: tails of files end up in the layer's metadata and must be copied. */
export function featureLayer3(): LayerTree {
  const t = T + 200000;
  return {
    '.': { type: 'dir', mtime: t },
    m: { type: 'dir', mtime: t },
    'm/a': { type: 'file', size: 3, mtime: t },
    'tail/t1': { type: 'file', size: 1, mtime: t },
    'tail/t100': { type: 'file', size: 100, mtime: t, xattrs: { 'user.k': 'v' } },
    'tail/t4095': { type: 'file', size: 4095, mtime: t },
    'tail/t4096': { type: 'file', size: 4096, mtime: t },
    'tail/t4097': { type: 'file', size: 4097, mtime: t },
    'tail/t5000': { type: 'file', size: 5000, mtime: t },
    'tail/t12388': { type: 'file', size: 12388, mtime: t },
    'tail/t3900': { type: 'file', size: 3900, mtime: t },
    'tail/t3900-link': { type: 'hardlink', to: 'tail/t3900' },
    etc: { type: 'dir', mtime: t },
    'etc/conf': { type: 'file', content: 'key=layer3\n', mtime: t, xattrs: { 'user.a': '3' } },
    'big/entry-with-a-fairly-long-name-020': { type: 'file', size: 4000, mtime: t },
    gone: { type: 'dir', mtime: t },
    'gone/new': { type: 'file', size: 3, mtime: t },
    opq: { type: 'dir', mtime: t },
    'opq/d': { type: 'file', size: 3, mtime: t },
  };
}

/** Top layer: root attributes, implicit parents, a whiteout of an inline-tail file, a new hard-link pair. */
export function featureLayer4(): LayerTree {
  const t = T + 300000;
  return {
    '.': { type: 'dir', mode: 0o750, mtime: t, xattrs: { 'user.rootnote': 'top' } },
    'var/lib/x': { type: 'file', size: 4096 * 3, mtime: t },
    'tail/t4097': { type: 'whiteout' },
    'top/h1': { type: 'file', size: 8192 + 1, mtime: t },
    'top/h2': { type: 'hardlink', to: 'top/h1' },
  };
}

export function buildFeatureLayers(work: string): string[] {
  return [
    buildLayer(work, 'feat1', featureLayer1()),
    buildLayer(work, 'feat2', featureLayer2(), { fixedTime: T + 100000 }),
    buildLayer(work, 'feat3', featureLayer3(), { inlineData: true }),
    buildLayer(work, 'feat4', featureLayer4()),
  ];
}

/**
 * `count` small layers: each adds a file and a directory entry, overwrites a
 * shared file, whiteouts the file of the layer below every third layer, and
 * makes `/stack` opaque every 25th layer.
 */
export function buildManyLayers(work: string, count: number): string[] {
  const layers: string[] = [];
  for (let i = 0; i < count; i++) {
    const t = T + i * 1000;
    const tree: LayerTree = {
      '.': { type: 'dir', mtime: t },
      [`f${i}`]: { type: 'file', size: (i * 37) % 5000, mtime: t },
      common: { type: 'file', size: 100 + i, mtime: t },
      stack: { type: 'dir', mtime: t, opaque: i > 0 && i % 25 === 0 },
      [`stack/s${i}`]: { type: 'file', size: i % 3 === 0 ? 0 : 4096, mtime: t },
    };
    if (i > 0 && i % 3 === 0) tree[`f${i - 1}`] = { type: 'whiteout' };
    layers.push(buildLayer(work, `many${i}`, tree));
  }
  return layers;
}
