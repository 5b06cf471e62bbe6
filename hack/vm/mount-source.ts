/**
 * Where vm-run gets the rootfs mount list from:
 *  - a JSON file or stdin (containerd's shape, [{type, source, target, options}]);
 *  - `ctr snapshots mounts <target> <key>` against a running containerd;
 *  - the Snapshots gRPC service directly (containerd's socket, or erofs-vmdk's
 *    own socket, which speaks the same containerd.services.snapshots.v1 API).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { credentials, Metadata } from '@grpc/grpc-js';
import { SnapshotsClient } from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../../src/mount/index';
import { MountListError, parseMountListJson } from './mount-list';

export function mountsFromJson(fileOrDash: string): Mount[] {
  const text = fileOrDash === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(fileOrDash, 'utf8');
  return parseMountListJson(text);
}

/** The target ctr prints in its mount commands; any fixed absolute path works. */
const CTR_TARGET = '/vm-run-target';

/**
 * Parses `ctr snapshots mounts` output. ctr prints one shell command per mount:
 * `mount -t <type> <source> <target> -o <options joined by ",">`.
 * The format is lossy: a source with a space or an option containing a comma
 * cannot be recovered, so such lines are refused (use --grpc for exact data).
 */
export function parseCtrMounts(output: string, target = CTR_TARGET): Mount[] {
  const mounts: Mount[] = [];
  for (const [n, line] of output.split('\n').entries()) {
    if (line.trim() === '') continue;
    const m = /^mount -t (\S+) (\S+) (\S+)(?: -o (.*))?$/.exec(line);
    if (!m) throw new MountListError(`ctr output line ${n + 1} is not "mount -t TYPE SOURCE TARGET -o OPTIONS": ${JSON.stringify(line)}`);
    if (m[3] !== target) throw new MountListError(`ctr output line ${n + 1} has target ${m[3]}, expected ${target}`);
    mounts.push({ type: m[1], source: m[2], target: '', options: m[4] ? splitCtrOptions(m[4]) : [] });
  }
  if (mounts.length === 0) throw new MountListError('ctr printed no mounts');
  return mounts;
}

/** Splits on commas outside `{{ … }}` templates. */
function splitCtrOptions(text: string): string[] {
  const options: string[] = [];
  let depth = 0;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    if (text.startsWith('{{', i)) depth++;
    if (text.startsWith('}}', i)) depth = Math.max(0, depth - 1);
    if (text[i] === ',' && depth === 0) {
      options.push(current);
      current = '';
    } else current += text[i];
  }
  options.push(current);
  return options;
}

export interface ContainerdRef {
  address: string;
  namespace: string;
  snapshotter: string;
  key: string;
}

export function mountsFromCtr(ref: ContainerdRef, ctr = 'ctr'): Mount[] {
  let out: string;
  try {
    out = execFileSync(
      ctr,
      ['--address', ref.address, '--namespace', ref.namespace, 'snapshots', '--snapshotter', ref.snapshotter, 'mounts', CTR_TARGET, ref.key],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new MountListError(`ctr snapshots mounts ${ref.key} failed: ${e.stderr?.trim() || e.message}`);
  }
  return parseCtrMounts(out);
}

/** Snapshots.Mounts over gRPC; namespace travels in the containerd-namespace metadata key. */
export function mountsFromGrpc(ref: ContainerdRef, timeoutMs = 10_000): Promise<Mount[]> {
  const target = ref.address.startsWith('unix:') ? ref.address : `unix://${ref.address}`;
  const client = new SnapshotsClient(target, credentials.createInsecure());
  const md = new Metadata();
  if (ref.namespace) md.set('containerd-namespace', ref.namespace);
  return new Promise<Mount[]>((resolve, reject) => {
    client.mounts({ snapshotter: ref.snapshotter, key: ref.key }, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) reject(new MountListError(`Snapshots.Mounts(${ref.snapshotter}, ${ref.key}) on ${ref.address} failed: ${err.message}`));
      else resolve((res?.mounts ?? []).map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] })));
    });
  });
}
