// Cheaper gradients for training-mode batch norm (FusedBatchNorm, Mean) on wasm: fewer full-size passes.
import * as tf from '@tensorflow/tfjs';

/*
 * tfjs-core's FusedBatchNorm gradient tiles rsqrt(var) to the full activation shape (wasm Tile: ~18 ms
 * a layer at 32×32×32×64) and spends about nine full-size multiplies; the five partial derivatives
 * share two per-channel sums, so here they cost one subtract, two multiplies and two reductions.
 * Mean's gradient drops a full-size division by folding 1/n into the broadcast constant.
 * Both only take over on the wasm backend; elsewhere the stock gradient runs unchanged.
 */

type GradFunc = tf.GradConfig['gradFunc'];
const stock = new Map<string, GradFunc>();

function override(kernelName: string, inputsToSave: string[], fast: GradFunc): void {
  if (!stock.has(kernelName)) {
    const g = tf.getGradient(kernelName);
    if (!g) throw new Error(`no gradient registered for ${kernelName}`);
    stock.set(kernelName, g.gradFunc);
  }
  const fallback = stock.get(kernelName)!;
  tf.registerGradient({
    kernelName,
    inputsToSave,
    gradFunc: (dy, saved, attrs) =>
      tf.getBackend() === 'wasm' ? fast(dy, saved, attrs) : fallback(dy, saved, attrs),
  });
}

const fusedBatchNormGrad: GradFunc = (dy, saved, attrs) => {
  const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
  const fallback = stock.get('FusedBatchNorm')!;
  if (
    mean.rank !== 1 ||
    variance.rank !== 1 ||
    (scale && scale.rank !== 1) ||
    (dy as tf.Tensor).dtype !== 'float32'
  ) {
    return fallback(dy, saved, attrs);
  }
  const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
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
};

const meanGrad: GradFunc = (dy, saved, attrs) => {
  const [x] = saved as [tf.Tensor];
  const { axis } = attrs as unknown as { axis: number | number[] | null };
  const rank = x.rank;
  const list = axis == null ? x.shape.map((_, i) => i) : Array.isArray(axis) ? axis : [axis];
  const axes = list.map((a) => (a < 0 ? a + rank : a));
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return { x: () => tf.mul(tf.reshape(dy as tf.Tensor, expanded), tf.fill(x.shape, 1 / n)) };
};

/** Puts tfjs-core's own gradients back (benchmark baselines). */
export function restoreStockGradients(): void {
  for (const [kernelName, gradFunc] of stock) {
    const inputsToSave = kernelName === 'FusedBatchNorm' ? ['x', 'mean', 'variance', 'scale'] : ['x'];
    tf.registerGradient({ kernelName, inputsToSave, gradFunc });
  }
}

/** Installs the wasm-only gradients. Idempotent; gradients are global, so backendName is only checked at use. */
export function registerFastGradients(): void {
  override('FusedBatchNorm', ['x', 'mean', 'variance', 'scale'], fusedBatchNormGrad);
  override('Mean', ['x'], meanGrad);
}
