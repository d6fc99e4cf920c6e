// Comparisons that broadcast first (x + 0) and compare one shape: wasm broadcasts them one element at a time.
import * as tf from '@tensorflow/tfjs';
import { type KernelReplacement, replacing } from '../replacement';
import { MAX_BROADCAST_RANK } from './tile';

/*
 * 12.6 ms for 50×49×40 against 50×1×40 (the gradient of the focal similarity's max over positions, every
 * step), where XNNPACK's broadcasting add takes 0.5 ms and a same-shape compare 0.6 ms. Broadcasting as
 * x + 0 is exact: −0 + 0 = +0, which compares as −0 does; NaN and ±∞ stay what they were.
 */
function comparison(kernelName: string): KernelReplacement {
  return replacing<tf.BinaryInputs>(kernelName, (args, previous) => {
    const a = args.inputs.a as tf.Tensor;
    const b = args.inputs.b as tf.Tensor;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || tf.util.arraysEqual(a.shape, b.shape)) {
      return previous(args);
    }
    const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    if (shape.length > MAX_BROADCAST_RANK) return previous(args);
    const widen = (x: tf.Tensor) => (tf.util.arraysEqual(x.shape, shape) ? x : tf.add(x, tf.zeros(shape)));
    const [wa, wb] = tf.tidy(() => [widen(a), widen(b)]);
    try {
      return previous({ ...args, inputs: { a: wa!, b: wb! } });
    } finally {
      if (wa !== a) wa!.dispose();
      if (wb !== b) wb!.dispose();
    }
  });
}

export const comparisons = [tf.Equal, tf.NotEqual, tf.Greater, tf.GreaterEqual, tf.Less, tf.LessEqual].map(
  comparison,
);
