// Seeding a prototype from a training patch: candidate gaps against hand-computed distances, and which patch wins.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { type Latents, patchGaps, pickPatch } from '../../gpu-backend/src/train/prototype-seeding';

const EPS = 1e-4;
const sim = (d: number) => Math.log((d + 1) / (d + EPS));

// A 1×5 grid of 2-d latents. Class 0 shows part A = [1,0] at cell 0 and part B = [0,1] at cell 4; class 1
// shows C = [1,1] at cell 2; everything else is background [0,0]. Two images per class.
const A = [1, 0];
const B = [0, 1];
const C = [1, 1];
const O = [0, 0];
const class0 = [A, O, O, O, B];
const class1 = [O, O, C, O, O];
let latents: Latents;

beforeAll(async () => {
  await initEngine('wasm');
  latents = { z: tf.tensor4d([[class0], [class0], [class1], [class1]]), labels: [0, 0, 1, 1] };
});
afterAll(() => latents.z.dispose());

describe('a candidate patch gap', () => {
  it('is its focal similarity on the class (its own image left out) minus on the rest, from the distances', () => {
    const candidates = tf.tensor2d([A, O]);
    const before = tf.memory().numTensors;
    const gaps = patchGaps(latents, 0, candidates, [0, 1], EPS);
    expect(tf.memory().numTensors).toBe(before);
    candidates.dispose();
    // A from image 0, on image 1 (class 0): squared distances 0,1,1,1,2 → min 0, mean 1. On class 1: all 1.
    // O from image 1, on image 0: 1,0,0,0,1 → min 0, mean 0.4. On class 1: 0,0,2,0,0 → min 0, mean 0.4.
    expect(gaps[0]).toBeCloseTo(sim(0) - sim(1) - (sim(1) - sim(1)), 4);
    expect(gaps[1]).toBeCloseTo(0, 6);
  });
});

describe('picking a patch', () => {
  it('takes the patch that best tells the class apart, the earlier cell on a tie', () => {
    const held = tf.zeros([0, 2]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const pick = pickPatch(latents, 0, held, 2, 0.5, EPS);
    expect(tf.memory().numTensors).toBe(before);
    held.dispose();
    // A and B tie (each: sim(0) − sim(1) on its class, 0 elsewhere); A sits in the earlier cell.
    expect(pick).toMatchObject({ image: 0, cell: 0, vector: A });
    expect(pick!.gap).toBeCloseTo(sim(0) - sim(1), 4);
  });

  it('skips the cells a held prototype already looks at, and so finds the part the class still misses', () => {
    const held = tf.tensor2d([A]);
    const pick = pickPatch(latents, 0, held, 2, 0.5, EPS);
    held.dispose();
    expect(pick).toMatchObject({ image: 0, cell: 4, vector: B });
  });

  it('gives nothing when no patch reaches the threshold', () => {
    const held = tf.tensor2d([A]);
    expect(pickPatch(latents, 0, held, 2, 100, EPS)).toBeNull();
    held.dispose();
  });
});
