// Pictures of explanations: per slot the input with its heatmap and box beside the prototype's training
// patch (a class card stacks every slot), and a gallery sheet of all prototypes.
import type { ClassEvidence, InputSpec } from '@protopool/shared';
import { upsampleBicubic } from './boxes';
import { compose, decodePng, denormalise, enlarge, fitSquare, overlay, type Rgba } from './render';

/** One row per slot: [input + heatmap + box | training patch]; `patches` maps prototype id → PNG bytes. */
export function classCard(
  image: Float32Array,
  input: InputSpec,
  evidence: ClassEvidence,
  patches: ReadonlyMap<number, Uint8Array>,
): Rgba {
  const base: Rgba = { rgba: denormalise(image, input), width: input.width, height: input.height };
  const factor = Math.max(1, Math.ceil(160 / Math.max(input.width, input.height)));
  const rows = evidence.slots.map((slot) => {
    const a = slot.activation;
    const heat = upsampleBicubic(a.data, a.height, a.width, input.height, input.width);
    const shown = enlarge(overlay(base, heat, slot.box), factor);
    const png = patches.get(slot.prototypeId);
    const patch = png
      ? fitSquare(decodePng(png), shown.height)
      : fitSquare({ rgba: new Uint8Array(4).fill(200), width: 1, height: 1 }, shown.height);
    return compose([shown, patch], 12);
  });
  return compose(rows, 12, true);
}

/** All prototype patches in a grid, by id; the legend (ids, classes) is written beside it as JSON. */
export function gallerySheet(patches: ReadonlyMap<number, Uint8Array>, cell = 96, columns = 8): Rgba {
  const ids = [...patches.keys()].sort((a, b) => a - b);
  const tiles = ids.map((id) => fitSquare(decodePng(patches.get(id)!), cell));
  const rows: Rgba[] = [];
  for (let i = 0; i < tiles.length; i += columns) rows.push(compose(tiles.slice(i, i + columns), 6));
  return rows.length ? compose(rows, 6, true) : { rgba: new Uint8Array(4).fill(255), width: 1, height: 1 };
}
