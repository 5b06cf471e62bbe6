/** The mount rewrite planner (pure): see plan.ts and docs/rewrite-and-store.md. */
export { planRewrite, renderMounts, isExtractKey } from './plan';
export {
  MAX_LAYERS,
  VMDK_MOUNT_OPTIONS,
  type FlatPlan,
  type FlatSource,
  type MountContract,
  type WritableLayer,
  type PassthroughPlan,
  type PassthroughReason,
  type RewriteEnv,
  type RewriteInput,
  type RewritePlan,
} from './plan-types';
export { renumberTemplates, TemplateError, type CollapsedRun } from './templates';
export { HOST_MOUNT_TYPE, CONTRACT_V2_OPTIONS } from './contract-v2';
