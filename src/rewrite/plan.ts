/**
 * The rewrite planner (design §3–4, contract v1): mounts in → plan; plan +
 * descriptor path → mounts out. Pure: no I/O except the injected
 * `env.legacyLayerOf`, no clock, no randomness. Everything it cannot express
 * exactly is refused with a SnapshotterError naming the key.
 */
import type { Mount } from '../mount';
import { checkLayerPath, planError, refuse, type PlanContext } from './errors';
import { parseErofsOptions } from './erofs-options';
import { isOverlayType, optionValue, viewOverlayAsBind } from './overlay';
import { hasTemplate, renumberTemplates, TemplateError, type CollapsedRun } from './templates';
import { renderContractV2, writableLayerOf } from './contract-v2';
import {
  MAX_LAYERS,
  VMDK_MOUNT_OPTIONS,
  type FlatPlan,
  type FlatSource,
  type PassthroughPlan,
  type PassthroughReason,
  type RewriteEnv,
  type RewriteInput,
  type RewritePlan,
} from './plan-types';

const passthrough = (reason: PassthroughReason): PassthroughPlan => ({ kind: 'passthrough', reason });

/** containerd's unpack keys contain `extract-`; the differ needs the original mounts. */
export function isExtractKey(key: string): boolean {
  return key.includes('extract');
}

export function planRewrite(input: RewriteInput, env: RewriteEnv): RewritePlan {
  if (!input.rewrite) return passthrough('profile');
  if (isExtractKey(input.key)) return passthrough('extract-key');
  const ctx: PlanContext = { key: input.key, profile: input.profile };
  checkMountList(ctx, input.mounts);
  const plan = planFlat(ctx, input.mounts, env);
  if (plan.kind === 'flat' && input.contract === 2) {
    // Decided before any disk is built: a shape v2 cannot carry is refused up front.
    plan.contract = 2;
    plan.writable = writableLayerOf(ctx, plan);
  }
  return plan;
}

function planFlat(ctx: PlanContext, mounts: Mount[], env: RewriteEnv): RewritePlan {
  const erofs = mounts.flatMap((m, i) => (m.type === 'erofs' ? [i] : []));
  if (erofs.length === 0) return planLegacy(ctx, mounts, env);
  const run: CollapsedRun = { start: erofs[0], end: erofs[erofs.length - 1] };
  if (erofs.length !== run.end - run.start + 1) {
    throw refuse(ctx, `erofs mounts ${erofs.join(', ')} are not one contiguous run`);
  }
  return planManagerRun(ctx, mounts, run);
}

/**
 * The mounts containerd receives: contract 1, the vmdk mount followed/preceded
 * by the kept mounts; contract 2, the one host-mountable entry.
 */
export function renderMounts(plan: FlatPlan, descriptorPath: string): Mount[] {
  if (plan.contract === 2 && plan.writable) return renderContractV2(plan.writable, descriptorPath);
  const vmdk: Mount = { type: 'vmdk', source: descriptorPath, target: '', options: [...VMDK_MOUNT_OPTIONS] };
  return [...plan.before.map(cloneMount), vmdk, ...plan.after.map(cloneMount)];
}

function cloneMount(m: Mount): Mount {
  return { type: m.type, source: m.source, target: m.target, options: [...m.options] };
}

/** Structural checks on what the backend returned (it is outside input too). */
function checkMountList(ctx: PlanContext, mounts: Mount[]): void {
  if (!Array.isArray(mounts)) throw planError('Internal', ctx, 'backend returned no mount list');
  mounts.forEach((m, i) => {
    const ok = m && typeof m.type === 'string' && typeof m.source === 'string' && typeof m.target === 'string' &&
      Array.isArray(m.options) && m.options.every((o) => typeof o === 'string');
    if (!ok) throw planError('Internal', ctx, `backend returned a malformed mount at index ${i}`);
    // erofs behind a mount-manager prefix would need its own semantics; refuse rather than guess.
    if (m.type !== 'erofs' && /(^|\/)erofs$/.test(m.type)) {
      throw refuse(ctx, `mount ${i} has type ${JSON.stringify(m.type)}; only plain "erofs" lowers can be flattened`);
    }
  });
}

// ---- containerd >= 2.2 (mount manager) shapes --------------------------------

function planManagerRun(ctx: PlanContext, mounts: Mount[], run: CollapsedRun): FlatPlan {
  const runMounts = mounts.slice(run.start, run.end + 1); // top first
  let fsmeta: string | undefined;
  let devices: string[] = [];
  runMounts.forEach((m, offset) => {
    const index = run.start + offset;
    if (hasTemplate(m.source) || m.options.some(hasTemplate)) {
      throw refuse(ctx, `erofs mount ${index} uses templates; only file-backed layers can be flattened`);
    }
    if (m.target !== '') throw refuse(ctx, `erofs mount ${index} has a target (${JSON.stringify(m.target)})`);
    checkLayerPath(ctx, `erofs mount ${index} source`, m.source);
    const parsed = parseErofsOptions(ctx, index, m.options);
    if (parsed.devices.length === 0) return;
    if (index !== run.end) {
      throw refuse(ctx, `erofs mount ${index} has device= options but is not the bottom of the run (${run.end})`);
    }
    parsed.devices.forEach((d, j) => checkLayerPath(ctx, `erofs mount ${index} device ${j + 1}`, d));
    fsmeta = m.source;
    devices = parsed.devices;
  });

  // Layers bottom first: the fsmeta's devices (already bottom first), then the
  // plain lowers above it from the lowest up (the run itself is top first).
  const plain = (fsmeta ? runMounts.slice(0, -1) : runMounts).map((m) => m.source).reverse();
  const layers = [...devices, ...plain];
  const source: FlatSource = runMounts.length > 1 ? 'merge' : fsmeta ? 'fsmeta' : 'single';
  checkLayerCount(ctx, layers.length);

  const total = mounts.length;
  const before = mounts.slice(0, run.start).map((m, i) => renumberMount(ctx, m, i, run, total));
  const after = mounts.slice(run.end + 1).map((m, i) => {
    const index = run.end + 1 + i;
    const renumbered = renumberMount(ctx, m, index, run, total);
    return collapsedView(ctx, index, m, renumbered);
  });
  const plan: FlatPlan = { kind: 'flat', source, shape: 'mount-manager', layers, fsmetaLayers: devices.length, before, after, contract: 1 };
  if (fsmeta !== undefined) plan.fsmeta = fsmeta;
  return plan;
}

function checkLayerCount(ctx: PlanContext, count: number): void {
  if (count > MAX_LAYERS) {
    throw refuse(ctx, `${count} layers; a flat descriptor can describe at most ${MAX_LAYERS}`);
  }
}

function renumberMount(ctx: PlanContext, m: Mount, index: number, run: CollapsedRun, total: number): Mount {
  try {
    return {
      type: m.type,
      source: renumberTemplates(m.source, run, total),
      target: renumberTemplates(m.target, run, total),
      options: m.options.map((o) => renumberTemplates(o, run, total)),
    };
  } catch (err) {
    if (err instanceof TemplateError) throw refuse(ctx, `mount ${index}: ${err.message}`);
    throw err;
  }
}

/**
 * A read-only view (overlay without upperdir) whose several lowers collapsed
 * into one: overlayfs would refuse it, so it becomes a bind of that one lower.
 */
function collapsedView(ctx: PlanContext, index: number, original: Mount, renumbered: Mount): Mount {
  if (!isOverlayType(original.type) || optionValue(original.options, 'upperdir') !== undefined) return renumbered;
  const before = optionValue(original.options, 'lowerdir');
  const after = optionValue(renumbered.options, 'lowerdir');
  if (before === undefined || after === undefined || before === after) return renumbered;
  if (after.includes(':')) return renumbered;
  return viewOverlayAsBind(ctx, index, renumbered, after);
}

// ---- containerd < 2.2 (legacy) shape -----------------------------------------

/**
 * Legacy: one plain `overlay` whose lowerdirs are `<dir>/fs`, where the
 * snapshotter mounted `<dir>/layer.erofs`. Each lowerdir is taken as that layer
 * blob. Lowerdirs with no layer blob at all mean another kind of snapshotter
 * (e.g. overlayfs) is upstream: passed through, nothing to flatten. A mix is
 * refused, because flattening part of the stack would change the tree.
 */
function planLegacy(ctx: PlanContext, mounts: Mount[], env: RewriteEnv): RewritePlan {
  if (mounts.length === 1 && mounts[0].type === 'bind') return planLegacyOneLayerView(ctx, mounts[0], env);
  if (mounts.length !== 1 || mounts[0].type !== 'overlay') return passthrough('no-erofs-lower');
  const overlay = mounts[0];
  if (overlay.options.some((o) => o.startsWith('lowerdir+=') || o.startsWith('datadir+='))) {
    throw refuse(ctx, 'overlay uses lowerdir+=/datadir+= options, which are not supported');
  }
  const lowerOptions = overlay.options.filter((o) => o.startsWith('lowerdir='));
  if (lowerOptions.length !== 1) return passthrough('no-erofs-lower');
  const lowerdirs = lowerOptions[0].slice('lowerdir='.length).split(':');
  const blobs = lowerdirs.map((dir) => (dir.startsWith('/') ? env.legacyLayerOf(dir) : undefined));
  const found = blobs.filter((b): b is string => b !== undefined);
  if (found.length === 0) return passthrough('not-erofs-layers');
  if (found.length !== lowerdirs.length) {
    const missing = lowerdirs.filter((_, i) => blobs[i] === undefined);
    throw refuse(ctx, `overlay lowerdirs ${missing.map((d) => JSON.stringify(d)).join(', ')} have no layer.erofs beside them ` +
      'while the others do; flattening only part of the stack would change the tree');
  }
  if (hasTemplate(overlay.source) || overlay.options.some(hasTemplate)) {
    throw refuse(ctx, 'legacy overlay mount already uses templates');
  }
  found.forEach((blob, i) => checkLayerPath(ctx, `layer of lowerdir ${i + 1}`, blob));
  const layers = [...found].reverse(); // lowerdir is top first
  checkLayerCount(ctx, layers.length);

  const options = overlay.options.map((o) => (o.startsWith('lowerdir=') ? 'lowerdir={{ mount 0 }}' : o));
  const rewritten: Mount = { type: 'format/overlay', source: overlay.source, target: overlay.target, options };
  const upper = optionValue(overlay.options, 'upperdir') !== undefined;
  const after = upper || lowerdirs.length === 1 ? rewritten : viewOverlayAsBind(ctx, 0, rewritten, '{{ mount 0 }}');
  return {
    kind: 'flat',
    source: layers.length === 1 ? 'single' : 'merge',
    shape: 'legacy',
    layers,
    fsmetaLayers: 0,
    before: [],
    after: [after],
    contract: 1,
  };
}

/**
 * Legacy read-only view of exactly one layer: `{bind, <dir>/fs, [ro, rbind]}`
 * (overlayfs needs two lowers without an upper). It is the layer's tree, so
 * the vmdk mount of that one blob is the whole answer — the same as the
 * manager shape `{erofs, layer.erofs, [ro, loop]}`. Without this, a VM runtime
 * got a bind of a host directory for every single-layer view. A writable bind
 * (parentless active snapshot) or a directory with no layer.erofs beside it is
 * not a layer: passed through.
 */
function planLegacyOneLayerView(ctx: PlanContext, bind: Mount, env: RewriteEnv): RewritePlan {
  if (!bind.options.includes('ro') || !bind.source.startsWith('/')) return passthrough('no-erofs-lower');
  const blob = env.legacyLayerOf(bind.source);
  if (blob === undefined) return passthrough('not-erofs-layers');
  const other = bind.options.find((o) => o !== 'ro' && o !== 'rbind' && o !== 'bind');
  if (other !== undefined) {
    throw refuse(ctx, `read-only bind of layer ${JSON.stringify(bind.source)} has option ${JSON.stringify(other)} that the vmdk mount cannot express`);
  }
  if (bind.target !== '') throw refuse(ctx, `read-only bind of layer ${JSON.stringify(bind.source)} has a target (${JSON.stringify(bind.target)})`);
  checkLayerPath(ctx, 'layer of the read-only bind', blob);
  return { kind: 'flat', source: 'single', shape: 'legacy', layers: [blob], fsmetaLayers: 0, before: [], after: [], contract: 1 };
}
