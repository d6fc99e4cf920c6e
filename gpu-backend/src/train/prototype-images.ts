// The "that training patch" pictures a model directory ships: prototypes/<id>.png for each projected prototype.
import type { Prototype } from '@protopool/shared';
import type { Dataset, Split } from '../data/dataset';
import { prototypePatchPng } from '../explain/render';

export function prototypeImagePath(id: number): string {
  return `prototypes/${id}.png`;
}

/** Renders each projected prototype's source patch from the (un-augmented) training split. */
export async function renderPrototypeImages(
  prototypes: Prototype[],
  sourceIndex: Record<number, number>,
  dataset: Dataset,
  train: Split,
): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  for (const p of prototypes) {
    const index = sourceIndex[p.id];
    if (!p.source || index === undefined) continue;
    const batch = await train.load([index]);
    files[prototypeImagePath(p.id)] = prototypePatchPng(batch.x, dataset.input, p.source.box);
  }
  return files;
}
