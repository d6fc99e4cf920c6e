// Sum over leading or trailing axes without wasm's transpose (reduce-by-pool.ts).
import * as tf from '@tensorflow/tfjs';
import { replacing } from '../replacement';
import { reduceByPool } from './reduce-by-pool';

export const sum = replacing<tf.SumInputs, tf.SumAttrs>(tf.Sum, (args, previous) => {
  const x = args.inputs.x as tf.Tensor;
  // Tiny reductions gain nothing from the matMul detour.
  if (x.dtype !== 'float32' || x.size < 4096) return previous(args);
  return (reduceByPool(x, args.attrs.axis, args.attrs.keepDims) ?? previous(args)) as tf.TensorInfo;
});
