// Pictures of explanations: per slot the input with its heatmap and box beside the prototype's training
// patch (a class card stacks every slot), and a gallery sheet of all prototypes.
import type { ClassEvidence, Explanation, InputSpec, SlotEvidence } from '@protopool/shared';
import { percent } from '../util/format';
import { upsampleBicubic } from './boxes';
import { type TextLine, textBlock } from './labels';
import { compose, decodePng, denormalise, enlarge, fitSquare, overlay, type Rgba } from './render';

/** A slot's numbers, beside its pictures: which prototype, how similar, how much it adds to the logit. */
function slotLabel(slot: SlotEvidence, height: number): Rgba {
  const label = textBlock(
    [
      { text: `slot ${slot.slot}: prototype #${slot.prototypeId}`, size: 14 },
      { text: `similarity ${slot.similarity.toFixed(3)}` },
      { text: `× weight ${slot.weight.toFixed(3)}` },
      { text: `= contribution ${slot.contribution.toFixed(3)}` },
      { text: `assignment ${slot.assignmentWeight.toFixed(2)}`, color: '#666666' },
    ],
    220,
  );
  return label.height >= height ? label : compose([label, blank(220, height - label.height)], 0, true);
}

function blank(width: number, height: number): Rgba {
  return {
    rgba: new Uint8Array(width * Math.max(0, height) * 4).fill(255),
    width,
    height: Math.max(0, height),
  };
}

/**
 * A class card: a header (the class, its probability, how its logit adds up; a warning when the input looks
 * like nothing the model was trained on), then one row per slot: [input + heatmap + box | training patch |
 * the slot's numbers]. `patches` maps prototype id → PNG bytes.
 */
export function classCard(
  image: Float32Array,
  input: InputSpec,
  explanation: Explanation,
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
    return compose([shown, patch, slotLabel(slot, shown.height)], 12);
  });
  const probability = explanation.topK.find((c) => c.classIndex === evidence.classIndex)?.probability;
  const own = evidence.slots.reduce((sum, s) => sum + s.contribution, 0);
  const predicted = explanation.prediction.classIndex === evidence.classIndex;
  const lines: TextLine[] = [
    {
      text: `${predicted ? 'Predicted' : 'Also considered'}: ${evidence.label}${probability === undefined ? '' : ` (${percent(probability)})`}`,
      size: 18,
    },
    {
      text: `logit ${evidence.logit.toFixed(3)} = slots ${own.toFixed(3)} + other classes' slots ${evidence.residual.toFixed(3)}`,
    },
  ];
  if (explanation.novelty?.flagged)
    lines.push({
      text: `Looks like nothing the model was trained on (novelty ${explanation.novelty.score.toFixed(2)})`,
      color: '#b00020',
    });
  const width = Math.max(...rows.map((r) => r.width));
  return compose([textBlock(lines, width), ...rows], 12, true);
}

/** All prototype patches in a grid, by id; the legend (ids, classes) is written beside it as JSON. */
export function gallerySheet(patches: ReadonlyMap<number, Uint8Array>, cell = 96, columns = 8): Rgba {
  const ids = [...patches.keys()].sort((a, b) => a - b);
  const tiles = ids.map((id) => fitSquare(decodePng(patches.get(id)!), cell));
  const rows: Rgba[] = [];
  for (let i = 0; i < tiles.length; i += columns) rows.push(compose(tiles.slice(i, i + columns), 6));
  return rows.length ? compose(rows, 6, true) : { rgba: new Uint8Array(4).fill(255), width: 1, height: 1 };
}
