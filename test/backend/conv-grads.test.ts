// The wasm conv gradient kernels equal cpu's for the shapes ResNet and the small CNN use, through every path.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { WASM_OWN_KERNELS } from '../../gpu-backend/src/kernels/wasm';
import { seededArray } from '../helpers/random';

type Case = {
  x: [number, number, number, number];
  k: number;
  co: number;
  s: number;
  pad: 'same' | 'valid' | number;
};
const cases: Case[] = [
  { x: [2, 9, 9, 3], k: 3, co: 4, s: 1, pad: 'same' },
  { x: [2, 9, 8, 3], k: 3, co: 4, s: 2, pad: 'same' },
  { x: [2, 10, 10, 3], k: 3, co: 5, s: 2, pad: 'same' },
  { x: [2, 10, 10, 3], k: 3, co: 5, s: 1, pad: 'valid' },
  { x: [2, 11, 11, 3], k: 3, co: 2, s: 2, pad: 'valid' },
  { x: [1, 16, 16, 3], k: 7, co: 4, s: 2, pad: 3 }, // ResNet stem
  { x: [2, 8, 8, 6], k: 1, co: 4, s: 1, pad: 'valid' }, // add-on
  { x: [2, 8, 8, 6], k: 1, co: 4, s: 2, pad: 'valid' }, // ResNet downsample shortcut
  { x: [2, 7, 7, 6], k: 1, co: 4, s: 2, pad: 'same' },
  { x: [2, 6, 6, 2], k: 5, co: 3, s: 1, pad: 'same' },
  // Output maps of ≤ 16 cells take the matMul + scatter input gradient (ResNet's last two stages).
  { x: [2, 4, 4, 3], k: 3, co: 4, s: 1, pad: 'same' },
  { x: [2, 8, 7, 3], k: 3, co: 4, s: 2, pad: 'same' },
  { x: [3, 2, 2, 6], k: 3, co: 5, s: 1, pad: 'same' },
  { x: [2, 4, 4, 5], k: 3, co: 6, s: 2, pad: 'same' },
  { x: [2, 3, 3, 4], k: 3, co: 3, s: 2, pad: 'same' },
  { x: [2, 4, 3, 3], k: 3, co: 4, s: 1, pad: 'valid' },
  { x: [2, 6, 6, 4], k: 3, co: 3, s: 2, pad: 'valid' },
  { x: [2, 3, 4, 3], k: 3, co: 2, s: 2, pad: 1 },
  { x: [2, 4, 4, 6], k: 1, co: 4, s: 2, pad: 'same' },
  // A 1×1 input map (a ResNet's layer4 at 32 px): one input cell to scatter into.
  { x: [2, 1, 1, 4], k: 3, co: 3, s: 1, pad: 'same' },
  // Larger strided maps take the polyphase input gradient.
  { x: [2, 9, 9, 3], k: 5, co: 4, s: 2, pad: 'same' },
  { x: [2, 9, 10, 3], k: 3, co: 4, s: 2, pad: 1 },
  { x: [2, 12, 12, 3], k: 7, co: 2, s: 2, pad: 'valid' },
  { x: [2, 9, 9, 5], k: 1, co: 3, s: 2, pad: 'same' },
];

/** Gradients of Σ r ⊙ conv2d(x, w) with respect to x and w, on the current backend. */
function grads(c: Case, useFused: boolean) {
  const [, , , ci] = c.x;
  const x = tf.tensor4d(
    seededArray(
      c.x.reduce((a, b) => a * b),
      1,
    ),
    c.x,
  );
  const w = tf.tensor4d(seededArray(c.k * c.k * ci * c.co, 2), [c.k, c.k, ci, c.co]);
  const out = tf.conv2d(x, w, c.s, c.pad);
  const r = tf.tensor(seededArray(out.size, 3), out.shape);
  const f = useFused
    ? (a: tf.Tensor, b: tf.Tensor) =>
        tf.fused
          .conv2d({ x: a as tf.Tensor4D, filter: b as tf.Tensor4D, strides: c.s, pad: c.pad })
          .mul(r)
          .sum()
    : (a: tf.Tensor, b: tf.Tensor) =>
        tf
          .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad)
          .mul(r)
          .sum();
  const [dx, dw] = tf.grads(f)([x, w]);
  const result = { dx: dx!.arraySync(), dw: dw!.arraySync() };
  tf.dispose([x, w, out, r, dx, dw]);
  return result;
}

function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(4) as number[];
  const fb = (b as number[]).flat(4) as number[];
  expect(fa.length).toBe(fb.length);
  return Math.max(...fa.map((v, i) => Math.abs(v - fb[i]!)));
}

describe('convolution gradients on wasm', () => {
  beforeAll(async () => {
    await initEngine('wasm');
  });

  it('registers its own backprop kernels (and UnsortedSegmentSum) for wasm', () => {
    expect(WASM_OWN_KERNELS.map((k) => k.kernelName)).toEqual(
      expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput']),
    );
    for (const k of WASM_OWN_KERNELS)
      expect(tf.getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
  });

  it.each(cases)('match cpu for x=$x k=$k co=$co stride=$s pad=$pad', async (c) => {
    await tf.setBackend('cpu');
    const ref = grads(c, false);
    await tf.setBackend('wasm');
    const start = tf.memory().numTensors;
    const plain = grads(c, false);
    const fused = grads(c, true);
    expect(tf.memory().numTensors).toBe(start);
    expect(maxAbsDiff(plain.dx, ref.dx)).toBeLessThan(1e-4);
    expect(maxAbsDiff(plain.dw, ref.dw)).toBeLessThan(1e-4);
    expect(maxAbsDiff(fused.dx, ref.dx)).toBeLessThan(1e-4);
    expect(maxAbsDiff(fused.dw, ref.dw)).toBeLessThan(1e-4);
    // Not vacuous: the gradients are far from zero.
    expect(Math.max(...(ref.dw as number[]).flat(4).map(Math.abs))).toBeGreaterThan(0.1);
  });
});
