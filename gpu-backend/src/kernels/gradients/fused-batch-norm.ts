// FusedBatchNorm's gradient in fewer full-size passes on wasm: one subtract, two multiplies, two reductions.
import * as tf from '@tensorflow/tfjs';
import type { GradOverride } from './override';

/*
 * tfjs-core's FusedBatchNorm gradient tiles rsqrt(var) to the full activation shape (wasm Tile: ~18 ms
 * a layer at 32×32×32×64) and spends about nine full-size multiplies; the five partial derivatives
 * share two per-channel sums, so here they cost one subtract, two multiplies and two reductions.
 */
export const fusedBatchNormGrad: GradOverride = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy, saved, attrs, stock) => {
    const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
    if (
      mean.rank !== 1 ||
      variance.rank !== 1 ||
      (scale && scale.rank !== 1) ||
      (dy as tf.Tensor).dtype !== 'float32'
    ) {
      return stock(dy, saved, attrs);
    }
    const { varianceEpsilon } = attrs as unknown as tf.FusedBatchNormAttrs;
    const g = dy as tf.Tensor;
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    // The engine runs each partial-derivative thunk in its own tidy, so shared values are made here (they
    // live until backprop ends; all are per-channel, the full-size temporaries die in this tidy).
    const [rstd, rstdGamma, sumDy, sumDyXc] = tf.tidy(() => {
      const r = tf.rsqrt(tf.add(variance, varianceEpsilon));
      return [
        r,
        scale ? tf.mul(r, scale) : r.clone(),
        tf.sum(g, axes),
        tf.sum(tf.mul(g, tf.sub(x, mean)), axes),
      ];
    }) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    return {
      x: () => tf.mul(g, rstdGamma),
      mean: () => tf.neg(tf.mul(rstdGamma, sumDy)),
      variance: () => tf.mul(tf.mul(tf.mul(rstdGamma, tf.square(rstd)), -0.5), sumDyXc),
      scale: () => tf.mul(sumDyXc, rstd),
      offset: () => sumDy.clone(),
    };
  },
};
