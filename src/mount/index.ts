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
