/**
 * containerd's types.Mount (api/types/mount.proto): type = 1, source = 2,
 * target = 3, options = 4. Plain data, used by every layer.
 */
export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export function mount(type: string, source: string, options: string[] = [], target = ''): Mount {
  return { type, source, target, options };
}

/**
 * Freezes a mount list in place so it can be shared between calls: a caller
 * that tried to edit a shared answer throws instead of corrupting later
 * answers. The proxy core plans a frozen list once (see ProxySnapshotter).
 */
export function freezeMounts(mounts: Mount[]): readonly Mount[] {
  for (const m of mounts) {
    Object.freeze(m.options);
    Object.freeze(m);
  }
  return Object.freeze(mounts);
}
