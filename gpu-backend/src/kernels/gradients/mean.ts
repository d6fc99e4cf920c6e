// Mean's gradient without a full-size division on wasm: 1/n folds into the broadcast constant.
import * as tf from '@tensorflow/tfjs';
import type { GradOverride } from './override';

export const meanGrad: GradOverride = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const { axis } = attrs as unknown as tf.MeanAttrs;
    const rank = x.rank;
    const list = axis == null ? x.shape.map((_, i) => i) : Array.isArray(axis) ? axis : [axis];
    const axes = list.map((a) => (a < 0 ? a + rank : a));
    const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
    const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return { x: () => tf.mul(tf.reshape(dy as tf.Tensor, expanded), tf.fill(x.shape, 1 / n)) };
  },
};
