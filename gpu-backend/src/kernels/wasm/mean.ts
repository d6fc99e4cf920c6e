// Mean over leading or trailing axes without wasm's transpose: batch-norm statistics (29 ms at 32×32×32×64).
import * as tf from '@tensorflow/tfjs';
import { replacing } from '../replacement';
import { reduceByPool } from './reduce-by-pool';

export const mean = replacing<tf.MeanInputs, tf.MeanAttrs>(tf.Mean, (args, previous) => {
  const x = args.inputs.x as tf.Tensor;
  if (x.dtype !== 'float32' || x.size < 4096) return previous(args);
  return (reduceByPool(x, args.attrs.axis, args.attrs.keepDims, true) ?? previous(args)) as tf.TensorInfo;
});
