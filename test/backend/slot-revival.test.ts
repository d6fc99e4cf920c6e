// Slot revival: which slots move to which prototype (hand-built gaps), and how the move lands in the slot logits.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { hardAssignment } from '../../gpu-backend/src/model/assignment';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';
import {
  applyRevival,
  planRevival,
  prototypeGaps,
  seedPrototypes,
} from '../../gpu-backend/src/train/slot-revival';

beforeAll(async () => {
  await initEngine('wasm');
});

describe('measuring', () => {
  it("takes a prototype's mean focal similarity on the class minus its mean on the other images", () => {
    // Three images (classes 0, 0, 1), two prototypes.
    const focal = [
      [4, 1],
      [2, 1],
      [1, 3],
    ];
    expect(prototypeGaps(focal, [0, 0, 1], 2)).toEqual([
      [3 - 1, 1 - 3],
      [1 - 3, 3 - 1],
    ]);
  });
});

describe('planning', () => {
  it('moves a slot whose prototype says nothing about its class to the best prototype the class lacks', () => {
    // Class 0 holds p1 (gap 0.1) and p0 (gap 3): p1's slot goes to p2, the best prototype it does not hold.
    expect(planRevival([[3, 0.1, 2, 0, 1]], [[1, 0]], 0.5)).toEqual([
      { classIndex: 0, slot: 0, from: 1, to: 2 },
    ]);
  });

  it('gives two weak slots of one class two different prototypes, best first', () => {
    expect(planRevival([[3, 0.1, 2, 0, 1]], [[1, 3]], 0.5)).toEqual([
      { classIndex: 0, slot: 0, from: 1, to: 0 },
      { classIndex: 0, slot: 1, from: 3, to: 2 },
    ]);
  });

  it('leaves a weak slot alone when no prototype would do better than the threshold', () => {
    expect(planRevival([[0.2, 0.1, 0.3]], [[1]], 0.5)).toEqual([]);
  });

  it('leaves every slot alone when all pass, and plans each class on its own gaps', () => {
    const gaps = [
      [2, 1, 0],
      [0, 0.2, 4],
    ];
    // Class 0's slots pass. Class 1's slot holding p0 (gap 0) takes p2; its slot holding p1 (0.2) stays, as
    // no prototype it lacks is left. A prototype may serve several classes.
    expect(
      planRevival(
        gaps,
        [
          [0, 1],
          [0, 1],
        ],
        0.5,
      ),
    ).toEqual([{ classIndex: 1, slot: 0, from: 0, to: 2 }]);
  });
});

describe('applying', () => {
  it('makes the new prototype the slot argmax and leaves every other slot as it was, without leaking', () => {
    const model = ProtoPoolModel.create({
      backbone: 'small-cnn',
      inputShape: [28, 28, 1],
      seed: 2,
      classes: 3,
      prototypes: 6,
      slotsPerClass: 2,
      depth: 8,
      ...HEAD_DEFAULTS,
    });
    const before = hardAssignment(model.head.slotLogits);
    const logitsBefore = model.head.slotLogits.arraySync();
    const target = [0, 1, 2, 3, 4, 5].find((p) => !before[1]!.includes(p))!;
    const tensors = tf.memory().numTensors;
    applyRevival(model, [{ classIndex: 1, slot: 1, from: before[1]![1]!, to: target }]);
    expect(tf.memory().numTensors).toBe(tensors);
    const after = hardAssignment(model.head.slotLogits);
    expect(after[1]![1]).toBe(target);
    const logitsAfter = model.head.slotLogits.arraySync();
    for (let c = 0; c < 3; c++) {
      for (let m = 0; m < 6; m++) {
        for (let k = 0; k < 2; k++) {
          if (c === 1 && k === 1 && m === target) {
            expect(logitsAfter[c]![m]![k]).toBeCloseTo(
              Math.max(...logitsBefore[1]!.map((r) => r[1]!)) + 0.1,
              5,
            );
          } else expect(logitsAfter[c]![m]![k]).toBe(logitsBefore[c]![m]![k]);
        }
      }
    }
    model.dispose();
  });
});

describe('seeding a fresh prototype', () => {
  it('hands the first weak slot left over a free prototype set to the patch its class still misses', () => {
    const model = ProtoPoolModel.create({
      backbone: 'small-cnn',
      inputShape: [28, 28, 1],
      seed: 3,
      classes: 2,
      prototypes: 4,
      slotsPerClass: 2,
      depth: 2,
      ...HEAD_DEFAULTS,
    });
    // p0 sits on part A; class 0's images (a 1×5 grid) show A at cell 0 and B at cell 4, class 1's show C.
    const [A, B, C, O] = [
      [1, 0],
      [0, 1],
      [1, 1],
      [0, 0],
    ];
    const start = [A, [0.3, 0.3], [0.5, 0.5], [0.9, 0.2]];
    const set = tf.tensor2d(start);
    model.head.prototypes.assign(set);
    set.dispose();
    const z = tf.tensor4d([[[A, O, O, O, B]], [[A, O, O, O, B]], [[O, O, C, O, O]], [[O, O, C, O, O]]]);
    // Class 0: slot 1 (p1) is weak, p0 informative. Class 1: slot 1 (p0) is weak too, but p3, the one
    // prototype no slot holds, has gone to class 0 by then.
    const gaps = [
      [3, 0.1, 0, 0],
      [0, 0, 3, 0],
    ];
    const before = tf.memory().numTensors;
    const moves = seedPrototypes(
      model,
      { z, labels: [0, 0, 1, 1] },
      gaps,
      [
        [0, 1],
        [2, 0],
      ],
      0.5,
      2,
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(moves).toEqual([{ classIndex: 0, slot: 1, from: 1, to: 3, seeded: true }]);
    const after = model.head.prototypes.arraySync();
    expect(after[3]).toEqual(B);
    expect(after.slice(0, 3)).toEqual(start.slice(0, 3).map((r) => r.map(Math.fround)));
    z.dispose();
    model.dispose();
  });
});
