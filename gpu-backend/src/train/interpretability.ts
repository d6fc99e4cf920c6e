// Interpretability metrics on data with part annotations (CUB layout): consistency and stability
// (Huang et al. 2023), purity (PIP-Net), and compactness. Pure counting here; the model-driven pass is `measureParts`.
import * as tf from '@tensorflow/tfjs';
import type { PartLocation, Split } from '../data/dataset';
import { upsampleBicubic } from '../explain/boxes';
import { hardAssignment } from '../model/assignment';
import type { ProtoPoolModel } from '../model/protopool';
import { mapOf } from '../model/similarity';
import { chunk } from '../util/arrays';
import { seededNormal } from '../util/random';

/** Window side around the activation peak: 72 px at 224 px input, scaled to the model's input. */
export function windowSide(inputSize: number): number {
  return (72 * inputSize) / 224;
}

/** Patch side for purity: 32 px at 224 px input, scaled to the model's input. */
export function patchSide(inputSize: number): number {
  return (32 * inputSize) / 224;
}

/** o[k]: part k is visible and inside the window of side `side` centred on the peak (px, py). */
export function partsInWindow(
  parts: readonly PartLocation[],
  numParts: number,
  px: number,
  py: number,
  side: number,
): boolean[] {
  const o = new Array<boolean>(numParts).fill(false);
  const half = side / 2;
  for (const p of parts) {
    if (p.visible && Math.abs(p.x - px) <= half && Math.abs(p.y - py) <= half) o[p.part] = true;
  }
  return o;
}

/**
 * Consistency of one prototype from its per-image part vectors: per part, the fraction of the images
 * where that part is visible in which it lies in the window; consistent if the best part reaches `threshold`.
 */
export function isConsistent(
  vectors: readonly boolean[][],
  visible: readonly boolean[][],
  threshold = 0.8,
): boolean {
  if (!vectors.length) return false;
  const k = vectors[0]!.length;
  let best = 0;
  for (let part = 0; part < k; part++) {
    let seen = 0;
    let hit = 0;
    vectors.forEach((o, i) => {
      if (visible[i]![part]) {
        seen++;
        if (o[part]) hit++;
      }
    });
    if (seen) best = Math.max(best, hit / seen);
  }
  return best >= threshold;
}

/** Stability of one prototype: the fraction of images whose part vector is unchanged under noise. */
export function stability(clean: readonly boolean[][], noisy: readonly boolean[][]): number {
  if (!clean.length) return 0;
  let same = 0;
  clean.forEach((o, i) => {
    if (o.every((v, k) => v === noisy[i]![k])) same++;
  });
  return same / clean.length;
}

/**
 * Purity of one prototype from the part vectors of its top patches: per part, the fraction of patches
 * that contain it; the best part's fraction.
 */
export function purity(top: readonly boolean[][]): number {
  if (!top.length) return 0;
  let best = 0;
  for (let part = 0; part < top[0]!.length; part++) {
    best = Math.max(best, top.filter((o) => o[part]).length / top.length);
  }
  return best;
}

/** Keeps the `k` entries with the highest score seen so far (ties: the earlier entry stays). */
export class TopK<T> {
  readonly items: { score: number; value: T }[] = [];
  constructor(private readonly k: number) {}
  offer(score: number, value: T): void {
    if (this.items.length === this.k && score <= this.items[this.k - 1]!.score) return;
    let i = this.items.length;
    while (i > 0 && this.items[i - 1]!.score < score) i--;
    this.items.splice(i, 0, { score, value });
    if (this.items.length > this.k) this.items.pop();
  }
}

/** What one class slot's prototype showed on one image of that class (clean and noisy input). */
export interface SlotObservation {
  /** Index of the image in the split. */
  image: number;
  classIndex: number;
  slot: number;
  prototype: number;
  /** Parts inside the window at the peak, on the clean and on the noisy input. */
  clean: boolean[];
  noisy: boolean[];
  /** Parts visible in the image. */
  visible: boolean[];
}

export interface SlotScores {
  /** 100 × mean over class slots (the unit of Huang et al.'s evaluator: a class's prototype on that class's images). */
  consistency: number;
  /** 100 × mean over class slots of the share of images whose part vector noise leaves unchanged. */
  stability: number;
  /**
   * 100 × mean over used prototypes, each judged on the images of every class that uses it: stricter for
   * shared prototypes, since one source patch should mean one part for all its classes.
   */
  consistencyShared: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function groupBy<K>(obs: readonly SlotObservation[], key: (o: SlotObservation) => K): SlotObservation[][] {
  const groups = new Map<K, SlotObservation[]>();
  for (const o of obs) (groups.get(key(o)) ?? groups.set(key(o), []).get(key(o))!).push(o);
  return [...groups.values()];
}

/** Consistency and stability from per-image observations; pure counting, so hand-checkable. */
export function slotScores(obs: readonly SlotObservation[]): SlotScores {
  const slots = groupBy(obs, (o) => `${o.classIndex}/${o.slot}`);
  const consistent = (g: SlotObservation[]) =>
    isConsistent(
      g.map((o) => o.clean),
      g.map((o) => o.visible),
    )
      ? 1
      : 0;
  return {
    consistency: 100 * mean(slots.map(consistent)),
    stability:
      100 *
      mean(
        slots.map((g) =>
          stability(
            g.map((o) => o.clean),
            g.map((o) => o.noisy),
          ),
        ),
      ),
    // A prototype in two slots of one class is one prototype here: each image counts once.
    consistencyShared:
      100 *
      mean(
        groupBy(obs, (o) => o.prototype).map((g) => consistent(groupBy(g, (o) => o.image).map((i) => i[0]!))),
      ),
  };
}

export interface InterpretabilityResult extends SlotScores {
  /** 100 × mean over used prototypes of the purity of their 10 most similar patches in the split. */
  purity: number;
  /** Prototypes the hard slot map uses (global size). */
  prototypesUsed: number;
  /** Mean over images of prototypes with a non-zero contribution to the predicted class (local size). */
  localSize: number;
  images: number;
}

/**
 * Peaks of every prototype's upsampled similarity map, per image: [image][prototype] → {x, y} in input px,
 * and the map's maximum on the feature grid (how strongly the image shows the prototype).
 */
function peaks(model: ProtoPoolModel, maps: Float32Array, n: number) {
  const [gh, gw] = model.grid;
  const [ih, iw] = model.config.inputShape;
  const m = model.config.prototypes;
  const out: { x: number; y: number; max: number }[][] = [];
  for (let b = 0; b < n; b++) {
    const row: { x: number; y: number; max: number }[] = [];
    for (let p = 0; p < m; p++) {
      const grid = mapOf(maps, b, p, gh * gw, m);
      const up = upsampleBicubic(grid, gh, gw, ih, iw);
      let best = 0;
      for (let i = 1; i < up.length; i++) if (up[i]! > up[best]!) best = i;
      row.push({ x: (best % iw) + 0.5, y: Math.floor(best / iw) + 0.5, max: Math.max(...grid) });
    }
    out.push(row);
  }
  return out;
}

/**
 * Consistency, stability, purity and compactness of `model` on a split with part annotations. For
 * consistency and stability each class slot's prototype is judged on the images of that class (as Huang et
 * al.'s evaluator enumerates each class's prototypes); `consistencyShared` judges each prototype on the
 * images of all its classes; purity uses a prototype's 10 most similar images of any class. Noise for
 * stability: clip(N(0, 0.2²), ±0.25) in normalised input space, seeded.
 */
export async function measureParts(
  model: ProtoPoolModel,
  split: Split,
  seed = 7,
  batchSize = 64,
): Promise<InterpretabilityResult> {
  const o = await observeParts(model, split, seed, batchSize);
  return {
    ...slotScores(o.observations),
    purity: 100 * mean(o.purityTop.map((top) => purity(top))),
    prototypesUsed: o.purityTop.length,
    localSize: o.images ? o.localSum / o.images : 0,
    images: o.images,
  };
}

/** The raw counts behind `measureParts`: every slot observation, each used prototype's top-10 patch vectors. */
export async function observeParts(model: ProtoPoolModel, split: Split, seed = 7, batchSize = 64) {
  const numParts = split.partNames?.length ?? 0;
  if (!numParts) throw new Error('interpretability metrics need part annotations (a CUB-layout dataset)');
  const hard = hardAssignment(model.head.slotLogits);
  const used = new Set(hard.flat());
  const side = windowSide(model.config.inputShape[0]);
  const patch = patchSide(model.config.inputShape[0]);
  const top = new Map([...used].map((p) => [p, new TopK<boolean[]>(10)]));
  const observations: SlotObservation[] = [];
  let images = 0;
  let localSum = 0;
  for (const [bi, indices] of chunk(
    Array.from({ length: split.size }, (_, i) => i),
    batchSize,
  ).entries()) {
    const batch = await split.load(indices);
    if (!batch.labels.length || !batch.parts) continue;
    const noise = seededNormal(batch.x.length, seed + bi, 0.2).map((v) => Math.max(-0.25, Math.min(0.25, v)));
    const noisyX = batch.x.map((v, i) => v + noise[i]!);
    // The clean images' maps and focal similarities from one forward; the noisy images' maps alone.
    const [predictedT, focalT, cleanT, noisyT] = tf.tidy(() => {
      const r = model.forwardWithMaps(tf.tensor4d(batch.x, batch.shape));
      return [
        tf.argMax(r.logits, 1),
        r.focal,
        r.maps,
        model.similarityMaps(tf.tensor4d(noisyX, batch.shape)),
      ];
    });
    const [predicted, cleanFocal, cleanMaps, noisyMaps] = [
      await predictedT.data(),
      (await focalT.array()) as number[][],
      (await cleanT.data()) as Float32Array,
      (await noisyT.data()) as Float32Array,
    ];
    tf.dispose([predictedT, focalT, cleanT, noisyT]);
    const n = batch.shape[0];
    const [cleanPeaks, noisyPeaks] = [peaks(model, cleanMaps, n), peaks(model, noisyMaps, n)];
    batch.labels.forEach((label, b) => {
      // Counted, not taken from `indices`: a skipped image leaves its batch shorter than its indices.
      const image = images++;
      const parts = batch.parts![b]!;
      const vis = Array.from({ length: numParts }, (_, k) => parts.some((p) => p.part === k && p.visible));
      // Local size (PIP-Net's local explanation size): the prototypes of the predicted class, the class the
      // explanation is for, whose focal similarity (× weight 1) is non-zero. Consistency and stability below
      // judge the true class's slots instead, as Huang et al.'s evaluator does.
      const k = model.config.slotsPerClass;
      const c = predicted[b]!;
      localSum += new Set(hard[c]!.filter((_, s) => Math.abs(cleanFocal[b]![c * k + s]!) > 1e-6)).size;
      for (const p of used) {
        const c0 = cleanPeaks[b]![p]!;
        top.get(p)!.offer(c0.max, partsInWindow(parts, numParts, c0.x, c0.y, patch));
      }
      hard[label]!.forEach((p, slot) => {
        const c0 = cleanPeaks[b]![p]!;
        const n0 = noisyPeaks[b]![p]!;
        observations.push({
          image,
          classIndex: label,
          slot,
          prototype: p,
          clean: partsInWindow(parts, numParts, c0.x, c0.y, side),
          noisy: partsInWindow(parts, numParts, n0.x, n0.y, side),
          visible: vis,
        });
      });
    });
  }
  return {
    observations,
    purityTop: [...used].map((p) => top.get(p)!.items.map((t) => t.value)),
    localSum,
    images,
  };
}
