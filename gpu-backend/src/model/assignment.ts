// Assignment of pool prototypes to class slots: softmax, Gumbel-softmax with an annealed scale, hard map.
import * as tf from '@tensorflow/tfjs';

export const DEFAULT_TAU = 0.5;
/** After training the scale is this large, which makes every slot's distribution effectively one-hot. */
export const INFERENCE_SCALE = 1e4;
export const MAX_SCALE = 1000;

/** s(e) = 1000·sqrt(e/T) for epoch e < T (the "gumbel time"), then 1000. */
export function gumbelScale(epoch: number, gumbelTime: number, max = MAX_SCALE): number {
  if (gumbelTime <= 0 || epoch >= gumbelTime) return max;
  return max * Math.sqrt(Math.max(epoch, 0) / gumbelTime);
}

/** q[c,:,k] = softmax_m(L[c,:,k]) for slot logits L: [C,M,K]. */
export function softAssignment(logits: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(
    () => tf.transpose(tf.softmax(tf.transpose(logits, [0, 2, 1]), -1), [0, 2, 1]) as tf.Tensor3D,
  );
}

/** Gumbel(0,1) noise −log(−log U), seeded. */
export function gumbelNoise(shape: [number, number, number], seed: number): tf.Tensor3D {
  return tf.tidy(() => {
    // Keep U inside (0,1): log(0) would give ±Inf.
    const u = tf.randomUniform(shape, 1e-10, 1 - 1e-7, 'float32', seed);
    return tf.neg(tf.log(tf.neg(tf.log(u)))) as tf.Tensor3D;
  });
}

/** q = softmax_m((s·L + g) / τ); without noise it is the deterministic tempered softmax. */
export function gumbelAssignment(
  logits: tf.Tensor3D,
  scale: number,
  noise: tf.Tensor3D | null,
  tau = DEFAULT_TAU,
): tf.Tensor3D {
  return tf.tidy(() => {
    const scaled = tf.mul(logits, scale);
    return softAssignment(tf.div(noise ? tf.add(scaled, noise) : scaled, tau) as tf.Tensor3D);
  });
}

/** The hard map: class c, slot k → argmax_m L[c,m,k]. Returns [C][K] prototype ids. */
export function hardAssignment(logits: tf.Tensor3D): number[][] {
  const idx = tf.tidy(() => tf.argMax(logits, 1));
  const out = idx.arraySync() as number[][];
  idx.dispose();
  return out;
}
