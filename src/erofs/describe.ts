/**
 * A readable account of one EROFS image for `erofs-vmdk inspect`: superblock
 * fields, feature names, device table, checksum status, and the header findings.
 */
import { checksumWindowEnd, computeSuperblockChecksum } from './checksum';
import { checkImageHeader, type ImageInput, type LayoutProblem } from './image';
import { FEATURE_COMPAT, FEATURE_INCOMPAT, featureNames, type DeviceSlot, type Superblock } from './superblock';

export interface ImageDescription {
  file: string;
  size: number;
  superblock?: Superblock;
  compatFeatures: string[];
  incompatFeatures: string[];
  checksum: 'absent' | 'ok' | 'mismatch' | 'unverifiable';
  computedChecksum?: number;
  deviceTable: DeviceSlot[];
  findings: LayoutProblem[];
}

export function describeImage(image: ImageInput): ImageDescription {
  const h = checkImageHeader(image);
  const sb = h.sb;
  const d: ImageDescription = {
    file: image.file,
    size: image.size,
    compatFeatures: [],
    incompatFeatures: [],
    checksum: 'unverifiable',
    deviceTable: h.slots,
    findings: h.problems,
  };
  if (!sb) return d;
  d.superblock = sb;
  d.compatFeatures = featureNames(sb.featureCompat, FEATURE_COMPAT);
  d.incompatFeatures = featureNames(sb.featureIncompat, FEATURE_INCOMPAT);
  if ((sb.featureCompat & FEATURE_COMPAT.SB_CHKSUM) === 0) d.checksum = 'absent';
  else if (image.head.length >= checksumWindowEnd(sb.blockSize)) {
    d.computedChecksum = computeSuperblockChecksum(image.head, sb.blockSize);
    d.checksum = d.computedChecksum === sb.checksum ? 'ok' : 'mismatch';
  }
  return d;
}

const h32 = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/** Plain-text rendering, one fact per line. */
export function formatImageDescription(d: ImageDescription): string {
  const lines = [`${d.file}: EROFS image, ${d.size} bytes`];
  const sb = d.superblock;
  if (sb) {
    lines.push(
      `  magic ${h32(sb.magic)}  block size ${sb.blockSize} (bits ${sb.blockSizeBits})  blocks ${sb.blocks} (${sb.blocks * sb.blockSize} bytes)`,
      `  checksum ${h32(sb.checksum)}: ${d.checksum}${d.computedChecksum !== undefined && d.checksum === 'mismatch' ? ` (computed ${h32(d.computedChecksum)})` : ''}`,
      `  feature_compat ${h32(sb.featureCompat)} [${d.compatFeatures.join(' ')}]`,
      `  feature_incompat ${h32(sb.featureIncompat)} [${d.incompatFeatures.join(' ')}]`,
      `  uuid ${sb.uuid}  volume name ${JSON.stringify(sb.volumeName)}`,
      `  root nid ${sb.rootNid}  inodes ${sb.inodes}  epoch ${sb.epoch}  build time ${sb.buildTime}`,
      `  meta_blkaddr ${sb.metaBlkAddr}  xattr_blkaddr ${sb.xattrBlkAddr}  sb_extslots ${sb.sbExtSlots}  dirblkbits ${sb.dirBlkBits}`,
      `  extra_devices ${sb.extraDevices}  devt_slotoff ${sb.devtSlotOff} (byte ${sb.devtSlotOff * 128})`,
    );
    for (const s of d.deviceTable) {
      lines.push(`  slot ${s.index} (device ${s.index + 1}): tag ${JSON.stringify(s.tag)} blocks ${s.blocks} uniaddr ${s.uniaddr}`);
    }
  }
  for (const f of d.findings) lines.push(`  finding ${f.code}: ${f.message}`);
  if (d.findings.length === 0) lines.push('  no findings');
  return lines.join('\n');
}
