// A seeded tensor for backend tests (uniform in [lo, hi)), the same numbers on every run.
import * as tf from '@tensorflow/tfjs';
import { seededArray } from './random';

export function seededTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  return tf.tensor(
    seededArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
      lo,
      hi,
    ),
    shape,
  );
}
