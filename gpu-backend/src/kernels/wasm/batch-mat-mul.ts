// BatchMatMul with a transpose flag as an explicit Transpose first: wasm's flagged path leaves XNNPACK (~10x slower).
import * as tf from '@tensorflow/tfjs';
import { replacing } from '../replacement';

/** The last two axes swapped (a matrix transpose per batch entry). */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  perm.push(...perm.splice(-2).reverse());
  return tf.transpose(x, perm);
}

// An explicit Transpose is memcpy-like. Hits every dense layer's gradient (dy·wᵀ, xᵀ·dy).
export const batchMatMul = replacing<tf.BatchMatMulInputs, tf.BatchMatMulAttrs>(
  tf.BatchMatMul,
  (args, previous) => {
    const a = args.inputs.a as tf.Tensor;
    const b = args.inputs.b as tf.Tensor;
    const { transposeA, transposeB } = args.attrs;
    if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') return previous(args);
    const at = transposeA ? swapLast(a) : a;
    const bt = transposeB ? swapLast(b) : b;
    const attrs = { ...args.attrs, transposeA: false, transposeB: false };
    const out = previous({ ...args, inputs: { a: at, b: bt }, attrs }) as tf.TensorInfo;
    if (at !== a) at.dispose();
    if (bt !== b) bt.dispose();
    return out;
  },
);
