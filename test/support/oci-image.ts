/**
 * Builds small OCI images locally (no network), as an OCI image-layout tar
 * archive that `ctr images import` accepts:
 *
 *   const img = buildOciArchive(path.join(dir, 'image.tar'), {
 *     name: 'docker.io/library/erofs-vmdk-e2e:latest',
 *     layers: [busyboxLayer(), [file('etc/message', 'hello\n'), file('etc/doomed', 'x')], [whiteout('etc/doomed')]],
 *     cmd: ['/bin/sh'],
 *   });
 *   img.chainIds   // snapshot names containerd gives the unpacked layers (bottom first)
 *
 * `user` sets the image config's `User` (what `ctr run` and CRI resolve with the
 * image's /etc/passwd and /etc/group); usersLayer() writes those two files.
 *
 * Layers are uncompressed tars (application/vnd.oci.image.layer.v1.tar), so
 * each layer's digest is also its diff ID. Whiteouts are OCI `.wh.<name>`
 * entries. The tar writer is plain ustar (names up to 100 bytes, or 255 with
 * the prefix field).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  mode: number;
  uid?: number;
  gid?: number;
  content?: Buffer;
  linkname?: string;
  mtime?: number;
}

export const file = (p: string, content: string | Buffer, mode = 0o644): TarEntry => ({
  path: p,
  type: 'file',
  mode,
  content: Buffer.isBuffer(content) ? content : Buffer.from(content),
});
export const dir = (p: string, mode = 0o755): TarEntry => ({ path: p, type: 'dir', mode });
export const symlink = (p: string, target: string): TarEntry => ({ path: p, type: 'symlink', mode: 0o777, linkname: target });
/** OCI whiteout: deletes `p` of the layers below. */
export const whiteout = (p: string): TarEntry => file(path.posix.join(path.posix.dirname(p), `.wh.${path.posix.basename(p)}`), '', 0o644);

const FIXED_MTIME = 1_700_000_000;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  let name = e.path.replace(/^\/+/, '') + (e.type === 'dir' && !e.path.endsWith('/') ? '/' : '');
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: path too long: ${e.path}`);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(e.uid ?? 0, 8), 108, 8, 'ascii');
  h.write(octal(e.gid ?? 0, 8), 116, 8, 'ascii');
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(e.mtime ?? FIXED_MTIME, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write({ file: '0', hardlink: '1', symlink: '2', dir: '5' }[e.type], 156, 1, 'ascii');
  if (e.linkname) h.write(e.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  if (prefix) h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** A ustar archive of the entries, in order, with the two zero end blocks. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const content = e.type === 'file' ? (e.content ?? Buffer.alloc(0)) : Buffer.alloc(0);
    parts.push(header(e, content.length), content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** busybox-static as a base layer: /bin/busybox plus the applets the tests use, and the usual top dirs. */
export function busyboxLayer(applets = ['sh', 'cat', 'ls', 'echo', 'test', 'stat']): TarEntry[] {
  const candidates = ['/bin/busybox', '/usr/bin/busybox'];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error('busybox not found (install busybox-static)');
  return [
    dir('bin'),
    file('bin/busybox', fs.readFileSync(found), 0o755),
    ...applets.map((a) => symlink(`bin/${a}`, 'busybox')),
    dir('etc'),
    file('etc/issue', 'erofs-vmdk test image (busybox)\n'),
    dir('dev'),
    dir('proc'),
    dir('sys'),
    dir('tmp', 0o1777),
  ];
}

/** An /etc/passwd and /etc/group for `users` (name, uid, gid) and `groups` (name, gid, members). */
export function usersLayer(users: { name: string; uid: number; gid: number }[], groups: { name: string; gid: number; members?: string[] }[]): TarEntry[] {
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}::/home/${u.name}:/bin/sh`),
  ];
  const group = ['root:x:0:', ...groups.map((g) => `${g.name}:x:${g.gid}:${(g.members ?? []).join(',')}`)];
  return [dir('etc'), file('etc/passwd', `${passwd.join('\n')}\n`), file('etc/group', `${group.join('\n')}\n`)];
}

export interface OciImage {
  archive: string;
  name: string;
  manifestDigest: string;
  configDigest: string;
  /** Layer digests = diff IDs (uncompressed layers), bottom first. */
  diffIds: string[];
  /** containerd's snapshot names for the unpacked layers (identity.ChainIDs), bottom first. */
  chainIds: string[];
}

export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

/** Writes an OCI image-layout tar at `archive` and returns its digests. */
export function buildOciArchive(
  archive: string,
  spec: { name: string; layers: TarEntry[][]; cmd?: string[]; env?: string[]; user?: string; architecture?: string },
): OciImage {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer) => {
    const d = sha256(b);
    blobs.set(d, b);
    return d;
  };
  const layerBlobs = spec.layers.map((entries) => tar(entries));
  const diffIds = layerBlobs.map(put);
  const architecture = spec.architecture ?? ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os: 'linux',
      config: { Cmd: spec.cmd ?? ['/bin/sh'], Env: spec.env ?? ['PATH=/bin'], WorkingDir: '/', ...(spec.user !== undefined ? { User: spec.user } : {}) },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: spec.layers.map((_, i) => ({ created_by: `erofs-vmdk test layer ${i + 1}` })),
    }),
  );
  const configDigest = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layerBlobs.map((b, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffIds[i], size: b.length })),
    }),
  );
  const manifestDigest = put(manifest);
  const tag = spec.name.includes(':') ? spec.name.slice(spec.name.lastIndexOf(':') + 1) : 'latest';
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture, os: 'linux' },
          annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const entries: TarEntry[] = [
    file('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' })),
    file('index.json', index),
    dir('blobs'),
    dir('blobs/sha256'),
    ...[...blobs].map(([d, b]) => file(`blobs/sha256/${d.slice('sha256:'.length)}`, b)),
  ];
  fs.writeFileSync(archive, tar(entries));
  return { archive, name: spec.name, manifestDigest, configDigest, diffIds, chainIds: chainIds(diffIds) };
}
