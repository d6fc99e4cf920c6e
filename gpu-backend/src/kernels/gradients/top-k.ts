// The gradient TF.js lacks for TopK (every engine): ProtoPool's distance losses pick prototypes by top-k
// of the slot assignment, which sits on the gradient path to the slot logits.
import * as tf from '@tensorflow/tfjs';

/** d(values)/dx: each top-k value's gradient flows back to the position it was taken from. */
export const topKGrad: tf.GradConfig = {
  kernelName: tf.TopK,
  inputsToSave: ['x'],
  outputsToSave: [false, true],
  gradFunc: (dy, saved) => {
    const [dValues] = dy as tf.Tensor[];
    const [x, indices] = saved as [tf.Tensor, tf.Tensor];
    return {
      x: () => {
        const n = x.shape[x.rank - 1]!;
        const spread = tf.mul(tf.oneHot(tf.cast(indices, 'int32'), n), tf.expandDims(dValues!, -1));
        return tf.sum(spread, -2);
      },
    };
  },
};
