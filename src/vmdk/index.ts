/** VMDK flat descriptors: render, parse, lint (design §5). */
export { VmdkError } from './errors';
export {
  CREATE_TYPE,
  MAX_DESCRIPTOR_LINES,
  SECTOR_SIZE,
  SPLIT_SECTORS,
  contentCid,
  expandExtents,
  geometryCylinders,
  parseDescriptor,
  renderDescriptor,
  type Extent,
  type ParsedDescriptor,
  type ParsedExtent,
  type RenderOptions,
} from './descriptor';
export { lintDescriptor, type DeviceLayout, type LintFinding, type LintOptions } from './lint';
export { MAX_EXTENT_PATH_BYTES, extentPathProblem, unsafePathProblem, type PathProblem } from './paths';
