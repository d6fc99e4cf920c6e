// One optimizer step: the batch's named loss terms, gradients summed over micro-batches, the phase's groups.
import * as tf from '@tensorflow/tfjs';
import { gumbelNoise, gumbelScale } from '../model/assignment';
import { shallowLayer } from '../model/backbones';
import { alignmentLoss } from '../model/feature-alignment';
import { clusterLoss, crossEntropy, lastLayerL1, orthogonalityLoss, separationLoss } from '../model/losses';
import type { ProtoPoolModel } from '../model/protopool';
import { betaSample, deriveSeed, mulberry32, permutation } from '../util/random';
import type { Phase, TrainConfig } from './config';
import type { GroupedAdam } from './optimizer';

/** What each phase trains: warm-up freezes the backbone, the last-layer phase all but the last layer. */
const GROUPS_BY_PHASE: Record<Phase, string[]> = {
  warmup: ['addOn', 'prototypes', 'slotLogits'],
  joint: ['backbone', 'addOn', 'prototypes', 'slotLogits'],
  lastLayer: ['lastLayer'],
};

/** Salts the mixup pairing's seed: which images a step mixes must not follow from its Gumbel noise or λ. */
const MIXUP_STREAM = 0x5bd1e995;

interface StepResult {
  loss: number;
  correct: number;
  /** Unweighted loss terms, for the log. */
  parts: Record<string, number>;
}

/** What every step of a run shares. */
interface StepContext {
  model: ProtoPoolModel;
  opt: GroupedAdam;
  config: TrainConfig;
}

/** Where a step sits in the run: the phase, the epoch, and the step's place among the epoch's `steps`. */
interface StepAt {
  phase: Phase;
  epoch: number;
  step: number;
  steps: number;
}

/** The loss terms, in the order they are logged and summed (the order fixes the float sums). */
type LossTerm = 'ce' | 'l1' | 'clst' | 'sep' | 'ortho' | 'align';

export async function trainStep(
  { model, opt, config }: StepContext,
  { x, shape, labels }: { x: Float32Array; shape: [number, number, number, number]; labels: Int32Array },
  { phase, epoch, step, steps }: StepAt,
): Promise<StepResult> {
  const groups = GROUPS_BY_PHASE[phase];
  const vars = groups.flatMap((g) => opt.group(g).variables);
  const seed = deriveSeed(config.seed, epoch, step);
  const w = config.loss;
  const c = model.config;
  const n = labels.length;
  const [, h, wd, ch] = shape;
  const perImage = h * wd * ch;
  // One Gumbel draw and one mixup λ per step, whatever the micro-batches.
  const noise = phase === 'lastLayer' ? null : gumbelNoise([c.classes, c.prototypes, c.slotsPerClass], seed);
  const lambda =
    config.mixup && phase !== 'lastLayer'
      ? betaSample(mulberry32(seed), config.mixup.alpha, config.mixup.alpha)
      : undefined;
  const micro = config.microBatch > 0 ? config.microBatch : n;
  let summed: tf.NamedTensorMap | undefined;
  const totals: tf.Tensor[] = [];
  let names: LossTerm[] = [];
  try {
    for (let start = 0, chunk = 0; start < n; start += micro, chunk++) {
      const end = Math.min(n, start + micro);
      // Each chunk's loss is weighted by its share, so the summed gradients are the batch mean's.
      const share = (end - start) / n;
      const chunkShape: [number, number, number, number] = [end - start, h, wd, ch];
      const result = outOfMemoryNamed(chunkShape, () =>
        tf.tidy(() => {
          let images = tf.tensor4d(x.subarray(start * perImage, end * perImage), chunkShape);
          const y = tf.tensor1d(labels.subarray(start, end), 'int32');
          let mix: { labelsB: tf.Tensor1D; lambda: number } | undefined;
          if (lambda !== undefined) {
            const perm = tf.tensor1d(permutation(end - start, (seed ^ MIXUP_STREAM) + chunk), 'int32');
            images = tf.add(tf.mul(images, lambda), tf.mul(tf.gather(images, perm), 1 - lambda));
            mix = { labelsB: tf.gather(y, perm), lambda };
          }
          let correct: tf.Scalar | undefined;
          let parts: tf.Tensor1D | undefined;
          // Checked to exist when training starts.
          const alignLayer = phase !== 'lastLayer' && w.align > 0 ? alignLayerOf(config) : undefined;
          const training = phase !== 'lastLayer';
          // A frozen backbone (warm-up, last-layer phase) runs before the tape: the same values, without
          // recording and cloning every one of its ops for a backward pass that never reaches them.
          const frozen = groups.includes('backbone')
            ? undefined
            : model.backboneFeatures(images, training, alignLayer);
          const { value, grads } = tf.variableGrads(() => {
            const mode = noise
              ? // The scale anneals within an epoch too: with few, long epochs a per-epoch jump would freeze
                // the slot assignment before the slot logits have learnt anything.
                ({
                  kind: 'gumbel',
                  scale: gumbelScale(epoch + step / steps, config.gumbelTime, config.gumbelMax),
                  noise,
                } as const)
              : ({ kind: 'inference' } as const);
            const fromFrozen = frozen && {
              ...model.forwardFromBackbone(frozen.f, mode, training),
              shallow: frozen.shallow,
            };
            const aligned = alignLayer
              ? (fromFrozen ?? model.forwardWithShallow(images, mode, training, alignLayer))
              : undefined;
            const r = aligned ?? fromFrozen ?? model.forward(images, mode, training);
            correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(r.logits, 1), y), 'float32'))) as tf.Scalar;
            // Each term unweighted (logged) and as it enters the loss. l1 is logged weighted, as it always was.
            const l1 = tf.mul(lastLayerL1(model.head.lastLayer, model.head.identity), w.l1) as tf.Scalar;
            const ce = crossEntropy(r.logits, y, mix);
            const loss: Partial<Record<LossTerm, { value: tf.Scalar; weighted: tf.Scalar }>> = {
              ce: { value: ce, weighted: ce },
              l1: { value: l1, weighted: l1 },
            };
            if (phase !== 'lastLayer') {
              // Under mixup the distance losses follow the first image's label, as the reference code does.
              const weighted = (value: tf.Scalar, weight: number) => ({
                value,
                weighted: tf.mul(value, weight) as tf.Scalar,
              });
              loss.clst = weighted(clusterLoss(r.minDistances, r.q, y, c.depth), w.clst);
              loss.sep = weighted(separationLoss(r.minDistances, r.q, y, c.depth), w.sep);
              loss.ortho = weighted(orthogonalityLoss(model.head.slotLogits), w.ortho);
              if (aligned) loss.align = weighted(alignmentLoss(aligned.shallow!, aligned.z), w.align);
            }
            names = Object.keys(loss) as LossTerm[];
            parts = tf.keep(tf.mul(tf.stack(names.map((t) => loss[t]!.value)), share) as tf.Tensor1D);
            const total = tf.addN(names.map((t) => loss[t]!.weighted)) as tf.Scalar;
            return share === 1 ? total : (tf.mul(total, share) as tf.Scalar);
          }, vars);
          return { grads, totals: [value, correct!, parts!] };
        }),
      );
      if (!summed) summed = result.grads;
      else {
        for (const [name, g] of Object.entries(result.grads)) {
          const before = summed[name]!;
          summed[name] = tf.add(before, g);
          tf.dispose([before, g]);
        }
      }
      if (!totals.length) totals.push(...result.totals);
      else {
        for (const [i, t] of result.totals.entries()) {
          const before = totals[i]!;
          totals[i] = tf.add(before, t);
          tf.dispose([before, t]);
        }
      }
    }
    opt.apply(summed!, groups);
  } finally {
    tf.dispose([...Object.values(summed ?? {}), ...(noise ? [noise] : [])]);
  }
  const [lossT, correctT, partsT] = totals as [tf.Tensor, tf.Tensor, tf.Tensor];
  const [loss, correct, partValues] = await Promise.all([lossT.data(), correctT.data(), partsT.data()]);
  tf.dispose([lossT, correctT, partsT]);
  const parts = Object.fromEntries(Array.from(partValues, (v, i) => [names[i]!, v]));
  if (!Number.isFinite(loss[0]!))
    throw new Error(`training diverged: loss is ${loss[0]} at epoch ${epoch + 1}, step ${step + 1}`);
  return { loss: loss[0]!, correct: correct[0]!, parts };
}

/**
 * wasm's heap stops at 4 GB, and an allocation past it surfaces as a bare WebAssembly.RuntimeError ("memory
 * access out of bounds", "table index is out of bounds") from whichever kernel asked. Measured: ResNet-50 at
 * 224 px trains at batch 4 and fails at 6. Say so, and what to change.
 */
function outOfMemoryNamed<T>(shape: readonly number[], step: () => T): T {
  try {
    return step();
  } catch (err) {
    // WebAssembly.RuntimeError (this package's types do not declare the WebAssembly namespace).
    if (!(err instanceof Error) || err.name !== 'RuntimeError') throw err;
    const [b, h, w] = shape;
    throw new Error(
      `the wasm engine failed in a training step at batch ${b}, ${h}×${w} px (${err.message}): most likely its 4 GB heap is full. Set "microBatch": 4 in the config (gradients accumulate over chunks of 4; ResNet-50 at 224 px fits 4 on wasm), use a smaller --batch-size, or a native engine (--engine tensorflow-gpu)`,
    );
  }
}

/** The shallow layer for `loss.align`: the configured one, else the built-in backbone's default. */
export function alignLayerOf(config: TrainConfig): string | undefined {
  return (
    config.model.alignLayer ?? (config.model.pretrained ? undefined : shallowLayer(config.model.backbone))
  );
}
