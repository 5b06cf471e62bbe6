/**
 * Validation of what containerd (or anyone on the socket) sends, before any
 * of it reaches a backend: an empty key or a malformed namespace is
 * InvalidArgument with a message naming the field, never a backend crash.
 */
import { invalidArgument } from '../errdefs';

/** containerd's labels.Validate: key + value of one label at most 4096 bytes. */
export const MAX_LABEL_PAIR_BYTES = 4096;

/** containerd's namespaces.Validate: label-like, at most 76 characters. */
const NAMESPACE_RE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_NAMESPACE_LENGTH = 76;

export function requireName(field: string, value: string, rpc: string): string {
  if (value === '') throw invalidArgument(`${rpc}: ${field} must not be empty`);
  return checkString(field, value, rpc);
}

export function checkString(field: string, value: string, rpc: string): string {
  if (value.includes('\0')) throw invalidArgument(`${rpc}: ${field} must not contain NUL bytes`);
  return value;
}

export function checkLabels(labels: Record<string, string>, rpc: string): Record<string, string> {
  for (const [key, value] of Object.entries(labels)) {
    if (key === '') throw invalidArgument(`${rpc}: label keys must not be empty`);
    const size = Buffer.byteLength(key) + Buffer.byteLength(value);
    if (size > MAX_LABEL_PAIR_BYTES) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      throw invalidArgument(`${rpc}: label "${shown}": key and value are ${size} bytes, more than the maximum of ${MAX_LABEL_PAIR_BYTES}`);
    }
    if (key.includes('\0') || value.includes('\0')) throw invalidArgument(`${rpc}: label "${key}" contains NUL bytes`);
  }
  return labels;
}

export function checkNamespace(namespace: string | undefined): string | undefined {
  if (namespace === undefined) return undefined;
  if (namespace.length > MAX_NAMESPACE_LENGTH || !NAMESPACE_RE.test(namespace)) {
    throw invalidArgument(`namespace ${JSON.stringify(namespace)} (metadata containerd-namespace) is not a valid containerd namespace`);
  }
  return namespace;
}

/** Update field paths containerd accepts: "labels" or "labels.<key>". */
export function checkFieldPaths(paths: string[], rpc: string): string[] {
  for (const p of paths) {
    if (p !== 'labels' && !(p.startsWith('labels.') && p.length > 'labels.'.length)) {
      throw invalidArgument(`${rpc}: cannot update field ${JSON.stringify(p)}: only "labels" and "labels.<key>" are mutable`);
    }
  }
  return paths;
}
