// The wasm kernels of ours (kernels/wasm/*), the filter flip and the batch-norm/mean gradients equal cpu.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { flipSpatial } from '../../gpu-backend/src/kernels/conv-grads';
import { maxPoolGrad } from '../../gpu-backend/src/kernels/maxpool-grad';
import { replacedBy } from '../../gpu-backend/src/kernels/replacement';
import { WASM_REPLACEMENTS } from '../../gpu-backend/src/kernels/wasm';
import { onCpuAnd } from '../helpers/compare';
import { seededTensor } from '../helpers/seeded-tensor';

function maxAbsDiff(a: Float32Array | number[], b: Float32Array | number[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const onBoth = (f: () => tf.Tensor[]) => onCpuAnd('wasm', f);

const t = (shape: number[], seed: number) => seededTensor(shape, seed);

describe('fast wasm kernels', () => {
  beforeAll(async () => {
    await initEngine('wasm');
  });

  it('are registered for wasm', () => {
    for (const { kernelName } of WASM_REPLACEMENTS) expect(replacedBy(kernelName, 'wasm')).toBe('wasm');
  });

  const compare = {
    equal: tf.equal,
    notEqual: tf.notEqual,
    greater: tf.greater,
    greaterEqual: tf.greaterEqual,
    less: tf.less,
    lessEqual: tf.lessEqual,
  };
  it.each(Object.keys(compare) as (keyof typeof compare)[])(
    '%s with broadcasting matches cpu, signed zeros, NaN and infinities included',
    async (op) => {
      const special = [0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1.5];
      const [ref, got] = await onBoth(() => {
        const a = tf.concat([tf.tensor1d(special), t([6 * 7 - 6], 3)]).reshape([6, 7, 1]);
        // b against every column of a: its entries recur in a, so equal ties occur.
        const b = tf.tensor3d([[[0, -0, Number.NaN, Number.POSITIVE_INFINITY, 1.5]]]);
        const tiles = tf.slice(a, [0, 0, 0], [1, 5, 1]).reshape([1, 1, 5]);
        return [
          tf.cast(compare[op](a, b), 'float32'),
          tf.cast(compare[op](tiles, a), 'float32'),
          tf.cast(compare[op](a, 0), 'float32'),
        ];
      });
      for (let i = 0; i < 3; i++) expect(Array.from(got[i]!)).toEqual(Array.from(ref[i]!));
      expect(ref[0]!.some((v) => v === 1)).toBe(true);
    },
  );

  it.each([
    { shape: [1, 1, 1, 5], reps: [3, 4, 2, 1] },
    { shape: [2, 3], reps: [2, 3] },
    { shape: [4], reps: [3] },
    { shape: [2, 1, 3], reps: [1, 5, 2] },
    { shape: [2, 3, 2, 2], reps: [2, 2, 3, 2] }, // too deep to interleave: stock kernel
    { shape: [2, 3], reps: [1, 1] },
  ])('Tile $shape × $reps matches cpu', async ({ shape, reps }) => {
    const [ref, got] = await onBoth(() => [tf.tile(t(shape, 1), reps)]);
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBe(0);
  });

  it.each([
    { shape: [8, 6, 6, 16], axis: [0, 1, 2], keepDims: false },
    { shape: [8, 6, 6, 16], axis: [2, 1, 0], keepDims: true },
    { shape: [64, 80], axis: [1], keepDims: false },
    { shape: [64, 80], axis: [-1], keepDims: true },
    { shape: [16, 16, 20], axis: [0, 1, 2], keepDims: false },
    { shape: [16, 16, 20], axis: [1], keepDims: false }, // middle axis: stock kernel
  ])('Sum $shape over $axis (keepDims $keepDims) matches cpu', async ({ shape, axis, keepDims }) => {
    const [ref, got] = await onBoth(() => [tf.sum(t(shape, 2), axis, keepDims)]);
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-4);
  });

  it.each([
    { shape: [8, 6, 6, 16], axis: [0, 1, 2], keepDims: false },
    { shape: [8, 6, 6, 16], axis: [0, 1, 2], keepDims: true },
    { shape: [300, 20], axis: [0], keepDims: false },
    { shape: [20, 300], axis: [1], keepDims: true },
    { shape: [16, 16, 20], axis: [0, 2], keepDims: false }, // neither leading nor trailing: stock kernel
  ])('Mean $shape over $axis (keepDims $keepDims) matches cpu', async ({ shape, axis, keepDims }) => {
    const [ref, got] = await onBoth(() => [tf.mean(t(shape, 12), axis, keepDims)]);
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-5);
  });

  it.each([
    { a: [12, 7], b: [12, 5], ta: true, tb: false },
    { a: [7, 12], b: [5, 12], ta: false, tb: true },
    { a: [3, 12, 7], b: [3, 5, 12], ta: true, tb: true },
  ])('matMul $a × $b (transposeA $ta, transposeB $tb) matches cpu', async ({ a, b, ta, tb }) => {
    const [ref, got] = await onBoth(() => [tf.matMul(t(a, 10), t(b, 11), ta, tb)]);
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-4);
  });

  it.each([
    { x: [4, 12, 12, 5], k: 3, s: 2, pad: 'same' as const }, // ResNet stem pool
    { x: [3, 11, 9, 4], k: 3, s: 2, pad: 'same' as const },
    { x: [4, 8, 8, 6], k: 2, s: 2, pad: 'valid' as const }, // small CNN
    { x: [3, 7, 7, 4], k: 2, s: 2, pad: 'valid' as const },
    { x: [2, 7, 6, 3], k: 3, s: 1, pad: 'same' as const },
    { x: [2, 9, 9, 3], k: 3, s: 2, pad: 1 },
  ])(
    'max-pool gradient $x k=$k s=$s pad=$pad matches cpu (ties to the first maximum)',
    async ({ x, k, s, pad }) => {
      const [ref, got] = await onBoth(() => {
        // ReLU makes many exact ties at 0, as in the networks.
        const a = tf.relu(t(x, 13)) as tf.Tensor4D;
        const y = tf.maxPool(a, k, s, pad);
        const r = t(y.shape, 14) as tf.Tensor4D;
        // On wasm: through the registered kernel and by calling ours directly (the same code path).
        const viaKernel = tf.grads((v: tf.Tensor) =>
          tf.sum(tf.mul(tf.maxPool(v as tf.Tensor4D, k, s, pad), r)),
        )([a]);
        return [
          ...viaKernel,
          tf.getBackend() === 'wasm' ? maxPoolGrad(r, a, y, k, s, pad) : viaKernel[0]!.clone(),
        ];
      });
      expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-5);
      expect(maxAbsDiff(got[1]!, ref[0]!)).toBeLessThan(1e-5);
      expect(Math.max(...Array.from(ref[0]!, Math.abs))).toBeGreaterThan(0.1);
    },
  );

  it.each([3, 7, 1])('flipSpatial equals reverse over the spatial axes (k=%i)', async (k) => {
    const [ref, got] = await onBoth(() => {
      const w = t([k, k, 3, 5], 3) as tf.Tensor4D;
      return [k > 1 ? tf.reverse(w, [0, 1]) : w.clone(), flipSpatial(w)];
    });
    expect(maxAbsDiff(got[1]!, ref[0]!)).toBe(0);
  });

  it.each([
    // tfjs-core itself cannot save a missing scale for backprop, so every case has one (as layers do).
    { shape: [4, 5, 5, 6] },
    { shape: [6, 8] },
  ])('training-mode batch norm gradients ($shape) match cpu', async ({ shape }) => {
    const c = shape[shape.length - 1]!;
    const axes = shape.slice(0, -1).map((_, i) => i);
    const [ref, got] = await onBoth(() => {
      const x = t(shape, 4);
      const gamma = t([c], 5);
      const beta = t([c], 6);
      const r = t(shape, 7);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, axes);
        const y = tf.batchNorm(a, mean, variance, b, g, 1e-3);
        return tf.sum(tf.mul(y, r));
      };
      return tf.grads(f)([x, gamma, beta]);
    });
    for (let i = 0; i < ref.length; i++) expect(maxAbsDiff(got[i]!, ref[i]!)).toBeLessThan(1e-4);
    expect(Math.max(...Array.from(ref[0]!, Math.abs))).toBeGreaterThan(1e-2);
  });

  it.each([
    { shape: [4, 5, 5, 6], scale: true, offset: true },
    { shape: [6, 8], scale: false, offset: true },
    { shape: [3, 4, 4, 5], scale: true, offset: false },
  ])(
    'batch norm forward $shape (scale $scale, offset $offset) matches cpu',
    async ({ shape, scale, offset }) => {
      const c = shape[shape.length - 1]!;
      const [ref, got] = await onBoth(() => {
        // A mean far from zero: the form must not cancel.
        const x = tf.add(t(shape, 15), 50);
        const variance = tf.add(tf.abs(t([c], 16)), 0.1);
        return [
          tf.batchNorm(
            x,
            tf.add(t([c], 17), 50),
            variance,
            offset ? t([c], 18) : undefined,
            scale ? t([c], 19) : undefined,
            1e-3,
          ),
        ];
      });
      expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-4);
    },
  );

  it('square matches cpu', async () => {
    const [ref, got] = await onBoth(() => [tf.square(t([40, 30, 5], 20)), tf.square(t([7], 21))]);
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBe(0);
    expect(maxAbsDiff(got[1]!, ref[1]!)).toBe(0);
  });

  it('clone shares data safely: disposing either side leaves the other intact', () => {
    const start = tf.memory().numTensors;
    const a = t([64, 80], 22);
    const b = a.clone();
    const expected = Array.from(a.dataSync());
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual(expected);
    const v = tf.variable(b);
    b.dispose();
    const doubled = tf.mul(v, 2);
    v.assign(doubled);
    doubled.dispose();
    expect(v.dataSync()[0]).toBeCloseTo(expected[0]! * 2, 5);
    v.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('mean gradient matches cpu', async () => {
    const [ref, got] = await onBoth(() => {
      const x = t([4, 3, 5], 8);
      const r = t([3], 9);
      return tf.grads((a: tf.Tensor) => tf.sum(tf.mul(tf.mean(a, [0, 2]), r)))([x]);
    });
    expect(maxAbsDiff(got[0]!, ref[0]!)).toBeLessThan(1e-6);
  });
});
