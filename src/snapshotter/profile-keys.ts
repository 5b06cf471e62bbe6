/**
 * Profiles share one backend, but containerd's keys (`<ns>/<seq>/<key>`) are
 * only unique per proxy name: two profiles can send the same key. Every key,
 * name and parent is therefore stored in the backend as `<profile>/<key>`, and
 * the prefix is stripped from everything the backend returns. A backend name
 * without this profile's prefix belongs to another profile and is never shown.
 */
import type { SnapshotInfo } from '../backend/backend';
import { invalidArgument, SnapshotterError } from '../errdefs';

export interface ProfileConfig {
  rewrite: boolean;
  /** Mount contract of rewritten answers (docs/contract-v2.md); default 2. */
  contract?: 1 | 2;
}

/** Profile names become key prefixes: no separator, nothing invisible. */
export function checkProfileName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw invalidArgument(`profile name ${JSON.stringify(name)} must be letters, digits, '.', '_' or '-' (and start with a letter or digit)`);
  }
}

export class ProfileKeys {
  private readonly prefix: string;

  constructor(readonly profile: string) {
    checkProfileName(profile);
    this.prefix = `${profile}/`;
  }

  toBackend(key: string): string {
    return this.prefix + key;
  }

  /** '' (no parent) stays ''. */
  parentToBackend(parent: string): string {
    return parent === '' ? '' : this.prefix + parent;
  }

  /** The client key of a backend name, or undefined when it is not this profile's. */
  fromBackend(name: string): string | undefined {
    return name.startsWith(this.prefix) ? name.slice(this.prefix.length) : undefined;
  }

  /** Info as the client must see it; undefined when the snapshot is not this profile's. */
  infoFromBackend(info: SnapshotInfo): SnapshotInfo | undefined {
    const name = this.fromBackend(info.name);
    if (name === undefined) return undefined;
    let parent = '';
    if (info.parent !== '') {
      const p = this.fromBackend(info.parent);
      // A parent in another profile cannot happen through this proxy; showing
      // a foreign backend key would leak it, so treat it as corrupt state.
      if (p === undefined) return undefined;
      parent = p;
    }
    return { ...info, name, parent, labels: { ...info.labels } };
  }

  /** For Stat/Update: the backend answered about the key we asked for, so it must map back. */
  requireInfo(info: SnapshotInfo, asked: string): SnapshotInfo {
    const out = this.infoFromBackend(info);
    if (!out) {
      throw new SnapshotterError('Internal', `backend answered for ${JSON.stringify(info.name)} (parent ${JSON.stringify(info.parent)}) ` +
        `when asked about ${JSON.stringify(this.toBackend(asked))}`);
    }
    return out;
  }
}
