// Puts a PyTorch ResNet state dict (torchvision or the authors' iNaturalist layout) into our ResNet backbone.
import * as tf from '@tensorflow/tfjs';
import { buildBackbone, type ResnetName } from '../model/backbones';
import {
  canonicalKeys,
  describeResnet,
  detectResnet,
  type KeyLayout,
  torchvisionSlots,
  type WeightSlot,
} from './resnet-layout';
import { CheckpointError, type StateDict, type TensorEntry } from './state-dict';

export interface ResnetImport {
  layout: KeyLayout;
  /** Weights copied into the backbone. */
  loaded: number;
  /** Keys present and understood but not part of a feature extractor (classifier, counters, cut stages). */
  ignored: string[];
}

/** At most this many lines per kind of mismatch; the count of the rest follows. */
const LIST_LIMIT = 12;

function listed(title: string, lines: string[]): string {
  if (!lines.length) return '';
  const more = lines.length > LIST_LIMIT ? `\n    … and ${lines.length - LIST_LIMIT} more` : '';
  return `\n  ${title} (${lines.length}):\n    ${lines.slice(0, LIST_LIMIT).join('\n    ')}${more}`;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Known keys a feature extractor leaves unused: the classifier, step counters, stages after the cut. */
function ignorable(key: string, stages: number): boolean {
  if (key === 'fc.weight' || key === 'fc.bias' || key.endsWith('.num_batches_tracked')) return true;
  const stage = /^layer(\d)\./.exec(key);
  return stage !== null && Number(stage[1]) > stages;
}

/** What `checkResnetKeys` found: each needed weight's entry, and the report. */
export interface ResnetPlan extends ResnetImport {
  slots: WeightSlot[];
  entry: (key: string) => TensorEntry;
}

/**
 * Checks a state dict against `arch` without reading any tensor data: one error lists every missing,
 * mis-shaped and unexpected key (so a CLI can refuse a checkpoint before it writes anything).
 */
export function checkResnetKeys(dict: StateDict, arch: ResnetName, stages = 4): ResnetPlan {
  const { layout, names } = canonicalKeys([...dict.entries.keys()]);
  const byName = new Map<string, TensorEntry>();
  for (const [key, name] of names) byName.set(name, dict.entries.get(key)!);
  const present = new Set(byName.keys());
  const found = detectResnet(present);
  if (found && found !== arch) {
    throw new CheckpointError(
      dict.file,
      `holds ${describeResnet(present)}, but the backbone is ${arch} (set model.backbone to "${found}")`,
    );
  }
  const slots = torchvisionSlots(arch, stages);
  const wanted = new Set(slots.map((s) => s.key));
  const original = new Map([...names].map(([k, n]) => [n, k]));
  const shown = (name: string) => (original.get(name) === name ? name : `${original.get(name)} (as ${name})`);
  const missing = slots.filter((s) => !present.has(s.key)).map((s) => `${s.key} ${shapeText(s.shape)}`);
  const misshaped = slots
    .filter((s) => present.has(s.key) && shapeText(byName.get(s.key)!.shape) !== shapeText(s.shape))
    .map(
      (s) => `${shown(s.key)}: expected ${shapeText(s.shape)}, found ${shapeText(byName.get(s.key)!.shape)}`,
    );
  const ignored = [...present].filter((k) => !wanted.has(k) && ignorable(k, stages));
  const unexpected = [...present]
    .filter((k) => !wanted.has(k) && !ignorable(k, stages))
    .map((k) => `${shown(k)} ${shapeText(byName.get(k)!.shape)}`);
  if (missing.length || misshaped.length || unexpected.length) {
    throw new CheckpointError(
      dict.file,
      `does not fit a ${arch} backbone (it looks like ${describeResnet(present)}; key layout ${layout}):` +
        listed('missing', missing) +
        listed('wrong shape', misshaped) +
        listed('unexpected', unexpected),
    );
  }
  return { layout, loaded: slots.length, ignored, slots, entry: (key) => byName.get(key)! };
}

/**
 * Copies the weights layer by layer after `checkResnetKeys`, reading each tensor only when its layer is set,
 * so the file's floats are never all in memory at once beside the model's.
 */
export async function loadResnetWeights(
  backbone: tf.LayersModel,
  dict: StateDict,
  arch: ResnetName,
  stages = 4,
): Promise<ResnetImport> {
  const { slots, entry, layout, loaded, ignored } = checkResnetKeys(dict, arch, stages);
  const byLayer = new Map<string, WeightSlot[]>();
  for (const s of slots) byLayer.set(s.layer, [...(byLayer.get(s.layer) ?? []), s]);
  for (const [layerName, layerSlots] of byLayer) {
    const layer = backbone.getLayer(layerName);
    const values: tf.Tensor[] = [];
    try {
      for (const s of layerSlots.sort((a, b) => a.index - b.index)) {
        const data = await entry(s.key).read();
        values.push(
          s.conv
            ? tf.tidy(() =>
                tf.transpose(tf.tensor4d(data, s.shape as [number, number, number, number]), [2, 3, 1, 0]),
              )
            : tf.tensor1d(data),
        );
      }
      layer.setWeights(values);
    } finally {
      tf.dispose(values);
    }
  }
  return { layout, loaded, ignored };
}

/** A ResNet backbone with a checkpoint's weights: built as `buildBackbone` builds it, then loaded. */
export async function importResnet(
  dict: StateDict,
  o: { arch: ResnetName; inputShape: [number, number, number]; stages?: number; seed: number },
): Promise<{ backbone: tf.LayersModel; report: ResnetImport }> {
  if (o.inputShape[2] !== 3) {
    throw new CheckpointError(
      dict.file,
      `a pretrained ResNet takes RGB input; the data has ${o.inputShape[2]} channel(s) (use channels=3)`,
    );
  }
  const backbone = buildBackbone({ name: o.arch, inputShape: o.inputShape, seed: o.seed, stages: o.stages });
  try {
    return { backbone, report: await loadResnetWeights(backbone, dict, o.arch, o.stages) };
  } catch (err) {
    backbone.dispose();
    throw err;
  }
}
