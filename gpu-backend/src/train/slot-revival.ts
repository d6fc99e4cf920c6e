// Slot revival: a class slot whose prototype scores the same on its class as elsewhere is handed a prototype that tells the class apart.
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/dataset';
import { hardAssignment } from '../model/assignment';
import type { ProtoPoolModel } from '../model/protopool';
import { latentFocal } from '../model/similarity';
import { chunk } from '../util/arrays';
import type { TrainConfig } from './config';
import { type Latents, pickPatch } from './prototype-seeding';

export interface SlotMove {
  classIndex: number;
  slot: number;
  from: number;
  to: number;
  /** Set when `to` was seeded from a training patch for this move. */
  seeded?: true;
}

/** One pass over `indices`: the latents (kept for seeding) and each image's focal similarity per prototype [N][M]. */
async function observe(
  model: ProtoPoolModel,
  split: Split,
  indices: readonly number[],
  batchSize: number,
): Promise<{ latents: Latents; focal: number[][] }> {
  const zs: tf.Tensor4D[] = [];
  const labels: number[] = [];
  const focal: number[][] = [];
  try {
    for (const part of chunk([...indices], batchSize)) {
      const batch = await split.load(part);
      if (!batch.labels.length) continue;
      const z = tf.tidy(() => model.latents(tf.tensor4d(batch.x, batch.shape)));
      zs.push(z);
      const focalT = latentFocal(z, model.head.prototypes, model.config.eps);
      focal.push(...((await focalT.array()) as number[][]));
      focalT.dispose();
      labels.push(...batch.labels);
    }
    return { latents: { z: tf.concat(zs, 0), labels }, focal };
  } finally {
    tf.dispose(zs);
  }
}

/**
 * gap[c][m]: prototype m's mean focal similarity (its own, `prototypeFocal`) on images of class c minus its
 * mean on the other classes' images. Near 0: m says nothing about c. focal: [N][M], labels: [N].
 */
export function prototypeGaps(
  focal: readonly (readonly number[])[],
  labels: readonly number[],
  classes: number,
): number[][] {
  const m = focal[0]?.length ?? 0;
  const sums = Array.from({ length: classes }, () => new Float64Array(m));
  const counts = new Float64Array(classes);
  const total = new Float64Array(m);
  labels.forEach((label, b) => {
    counts[label]!++;
    for (let p = 0; p < m; p++) {
      sums[label]![p]! += focal[b]![p]!;
      total[p]! += focal[b]![p]!;
    }
  });
  const n = labels.length;
  return sums.map((row, k) =>
    Array.from(row, (s, p) => {
      const own = counts[k] ? s / counts[k]! : 0;
      const rest = n - counts[k]! ? (total[p]! - s) / (n - counts[k]!) : 0;
      return own - rest;
    }),
  );
}

/**
 * Pure planning: for each class, each slot whose prototype's gap is below `minGap` takes the class's best
 * prototype that none of its slots holds yet, if that one reaches `minGap`; slots are served in slot order,
 * and a prototype handed to one slot is no longer a candidate for the class's next.
 */
export function planRevival(
  gaps: readonly number[][],
  hard: readonly number[][],
  minGap: number,
): SlotMove[] {
  const moves: SlotMove[] = [];
  hard.forEach((slots, c) => {
    const held = new Set(slots);
    const candidates = gaps[c]!.map((g, p) => ({ g, p }))
      .filter(({ p }) => !held.has(p))
      .sort((a, b) => b.g - a.g || a.p - b.p);
    slots.forEach((from, slot) => {
      if (gaps[c]![from]! >= minGap) return;
      const next = candidates[0];
      if (!next || next.g < minGap) return;
      candidates.shift();
      moves.push({ classIndex: c, slot, from, to: next.p });
    });
  });
  return moves;
}

/**
 * Points each moved slot at its new prototype: its logit becomes the slot's largest plus `margin`, so the
 * hard map (and, at the trained Gumbel scale, the training assignment) picks it; the others keep their logits.
 */
export function applyRevival(model: ProtoPoolModel, moves: readonly SlotMove[], margin = 0.1): void {
  if (!moves.length) return;
  const logits = model.head.slotLogits;
  const values = logits.arraySync() as number[][][];
  for (const { classIndex, slot, to } of moves) {
    const row = values[classIndex]!;
    const top = Math.max(...row.map((r) => r[slot]!));
    row[to]![slot] = top + margin;
  }
  const next = tf.tensor3d(values);
  logits.assign(next);
  next.dispose();
}

/**
 * Slots `planRevival` could not serve get a fresh prototype: for each class (one per pass) whose first weak slot
 * remains, the lowest-numbered prototype no slot holds is set to the class's best patch (`pickPatch`) and the
 * slot moves to it. Unused prototypes get no gradient, so without this no prototype would ever learn a part
 * the class's current prototypes miss. Returns the extra moves; writes the seeded prototypes.
 */
export function seedPrototypes(
  model: ProtoPoolModel,
  latents: Latents,
  gaps: readonly number[][],
  hard: readonly number[][],
  minGap: number,
  images: number,
): SlotMove[] {
  const { prototypes: m, depth, eps } = model.config;
  const inUse = new Set(hard.flat());
  const free = Array.from({ length: m }, (_, p) => p).filter((p) => !inUse.has(p));
  const moves: SlotMove[] = [];
  const values = model.head.prototypes.arraySync();
  hard.forEach((slots, c) => {
    const slot = slots.findIndex((p) => gaps[c]![p]! < minGap);
    if (slot < 0 || !free.length) return;
    const informative = slots.filter((p) => gaps[c]![p]! >= minGap);
    const held: tf.Tensor2D = informative.length
      ? tf.gather(model.head.prototypes, informative)
      : tf.zeros([0, depth]);
    const pick = pickPatch(latents, c, held, images, minGap, eps);
    held.dispose();
    if (!pick) return;
    const to = free.shift()!;
    values[to] = pick.vector;
    moves.push({ classIndex: c, slot, from: slots[slot]!, to, seeded: true });
  });
  if (moves.length) {
    const next = tf.tensor2d(values);
    model.head.prototypes.assign(next);
    next.dispose();
  }
  return moves;
}

/** `seedImages` 0: this pass seeds no prototype (the trainer passes 0 before `revive.seedFrom`). */
export type RevivalOptions = Pick<NonNullable<TrainConfig['revive']>, 'minGap' | 'seedImages'>;

/** One revival pass: measure on `indices` of `split`, plan, seed, apply; returns the moves made. */
export async function reviveSlots(
  model: ProtoPoolModel,
  split: Split,
  indices: readonly number[],
  options: RevivalOptions,
  batchSize = 64,
): Promise<SlotMove[]> {
  const { latents, focal } = await observe(model, split, indices, batchSize);
  try {
    const gaps = prototypeGaps(focal, latents.labels, model.config.classes);
    const hard = hardAssignment(model.head.slotLogits);
    const moves = planRevival(gaps, hard, options.minGap);
    const after = hard.map((slots) => [...slots]);
    for (const { classIndex, slot, to } of moves) after[classIndex]![slot] = to;
    if (options.seedImages > 0)
      moves.push(...seedPrototypes(model, latents, gaps, after, options.minGap, options.seedImages));
    applyRevival(model, moves);
    return moves;
  } finally {
    latents.z.dispose();
  }
}
