// Square as XNNPACK's x·x: wasm's Square took 5 ms at 32×32×32×64, this 2 (batch-norm variance, Adam's v).
import * as tf from '@tensorflow/tfjs';
import { replacing } from '../replacement';

export const square = replacing<tf.SquareInputs>(tf.Square, (args, previous) => {
  const x = args.inputs.x as tf.Tensor;
  if (x.dtype !== 'float32' || x.size < 4096) return previous(args);
  return tf.mul(x, x) as unknown as tf.TensorInfo;
});
