/**
 * The three views of a merged image that must agree (issue "Native fsmerge",
 * acceptance): overlayfs over the per-layer read-only mounts (the oracle), our
 * fsmeta mounted with one loop device per layer (device=), and the flat image
 * (qemu-img convert of a VMDK descriptor over fsmeta ‖ layers, loop-mounted).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mergeLayersWithLayout, type MergeResult } from '../../../src/merge';
import { renderDescriptor } from '../../../src/vmdk/descriptor';
import { attachLoop, detachLoop, listFlatDescriptor, listMultiDevice, listOverlay, listTree, run, unmount } from '../../support/kernel-mounts';

export interface Views {
  result: MergeResult;
  fsmetaPath: string;
  overlay: string;
  multiDevice: string;
  flat: string;
}

/** Descriptor for `fsmeta ‖ layer1 ‖ … ‖ layerN`, whole files at offset 0, extents = slot sizes. */
export function writeDescriptor(result: MergeResult, fsmetaPath: string, out: string): string {
  const perBlock = result.blockSize / 512;
  const extents = [
    { path: path.resolve(fsmetaPath), sectors: result.fsmetaBlocks * perBlock, offset: 0 },
    ...result.devices.map((d) => ({ path: path.resolve(d.path), sectors: d.blocks * perBlock, offset: 0 })),
  ];
  fs.writeFileSync(out, renderDescriptor(extents));
  return out;
}

/**
 * Overlay oracle for long layer lists: the kernel limits mount options to one
 * page, so the lowers are mounted on short relative names (l0, l1, …) and the
 * overlay is mounted from inside that directory. Same semantics as listOverlay.
 */
export async function listOverlayMany(layersBottomFirst: string[], scratch: string): Promise<string> {
  const base = fs.mkdtempSync(path.join(scratch, 'ov-'));
  const loops: string[] = [];
  const mounted: string[] = [];
  try {
    const names: string[] = [];
    layersBottomFirst.forEach((layer, i) => {
      const name = `${i}`;
      fs.mkdirSync(path.join(base, name));
      const loop = attachLoop(layer);
      loops.push(loop);
      run('mount', ['-t', 'erofs', '-o', 'ro', loop, path.join(base, name)]);
      mounted.push(path.join(base, name));
      names.push(name);
    });
    const merged = path.join(base, 'merged');
    fs.mkdirSync(merged);
    run('sh', ['-c', `cd "$1" && mount -t overlay overlay -o "ro,lowerdir=$2" merged`, 'sh', base, [...names].reverse().join(':')]);
    mounted.push(merged);
    return listTree(merged);
  } finally {
    mounted.reverse().forEach(unmount);
    loops.forEach(detachLoop);
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** Merges `layers` (bottom first) into `work` and lists all three views. */
export async function threeViews(layers: string[], work: string, name = 'merged'): Promise<Views> {
  const result = mergeLayersWithLayout(layers.map((p) => ({ path: p })));
  const fsmetaPath = path.join(work, `${name}.fsmeta.erofs`);
  fs.writeFileSync(fsmetaPath, result.fsmeta);
  const descriptor = writeDescriptor(result, fsmetaPath, path.join(work, `${name}.vmdk`));
  const overlay = layers.length > 40 ? await listOverlayMany(layers, work) : await listOverlay(layers);
  const multiDevice = await listMultiDevice(fsmetaPath, layers);
  const flat = await listFlatDescriptor(descriptor);
  return { result, fsmetaPath, overlay, multiDevice, flat };
}
