// Slot revival: a class slot whose prototype scores the same on its class as elsewhere is handed a prototype that tells the class apart.
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/dataset';
import { hardAssignment } from '../model/assignment';
import type { ProtoPoolModel } from '../model/protopool';
import { prototypeFocal } from '../model/similarity';
import { chunk } from '../util/arrays';

export interface SlotMove {
  classIndex: number;
  slot: number;
  from: number;
  to: number;
}

/**
 * gap[c][m]: prototype m's mean focal similarity (its own, `prototypeFocal`) on images of class c minus its
 * mean on the other classes' images. Near 0: m says nothing about c.
 */
export async function prototypeGaps(
  model: ProtoPoolModel,
  split: Split,
  indices: readonly number[],
  batchSize = 64,
): Promise<number[][]> {
  const { classes: c, prototypes: m } = model.config;
  const sums = Array.from({ length: c }, () => new Float64Array(m));
  const counts = new Float64Array(c);
  const total = new Float64Array(m);
  for (const part of chunk([...indices], batchSize)) {
    const batch = await split.load(part);
    if (!batch.labels.length) continue;
    const focalT = tf.tidy(() => {
      const out = model.forward(tf.tensor4d(batch.x, batch.shape), { kind: 'inference' }, false);
      return prototypeFocal({ min: out.minDistances, mean: out.meanDistances }, model.config.eps);
    });
    const focal = (await focalT.array()) as number[][];
    focalT.dispose();
    batch.labels.forEach((label, b) => {
      counts[label]!++;
      for (let p = 0; p < m; p++) {
        sums[label]![p]! += focal[b]![p]!;
        total[p]! += focal[b]![p]!;
      }
    });
  }
  const n = counts.reduce((a, v) => a + v, 0);
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

/** One revival pass: measure on `indices` of `split`, plan, apply; returns the moves made. */
export async function reviveSlots(
  model: ProtoPoolModel,
  split: Split,
  indices: readonly number[],
  minGap: number,
): Promise<SlotMove[]> {
  const gaps = await prototypeGaps(model, split, indices);
  const moves = planRevival(gaps, hardAssignment(model.head.slotLogits), minGap);
  applyRevival(model, moves);
  return moves;
}
