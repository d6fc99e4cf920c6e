// Comparing one computation across TF.js backends: the cpu backend as the reference, float rounding aside.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

/**
 * max |got − ref| / max |ref|: relative to the tensor's scale, so near-zero entries (where summation order
 * alone moves the last bits) do not dominate.
 */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(got.length).toBe(ref.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

/**
 * Runs `f` on cpu, then on `backend`, and returns both flat results ([cpu, backend]); on each, every
 * tensor `f` makes must be disposed by the time it returns.
 */
export async function onCpuAnd(
  backend: string,
  f: () => tf.Tensor[],
): Promise<[Float32Array[], Float32Array[]]> {
  const run = () => {
    const start = tf.memory().numTensors;
    const outs = tf.tidy(f);
    const data = outs.map((t) => t.dataSync() as Float32Array);
    tf.dispose(outs);
    expect(tf.memory().numTensors).toBe(start);
    return data;
  };
  await tf.setBackend('cpu');
  const ref = run();
  await tf.setBackend(backend);
  return [ref, run()];
}
