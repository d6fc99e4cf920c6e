// Shallow–deep feature alignment (after Huang et al. 2023): deep cells should be alike where the image is alike.
import * as tf from '@tensorflow/tfjs';

/**
 * Per image, the cosine similarities between all pairs of grid cells: [B,N,N] for N = H·W. Features are
 * centred over the cells first, so the matrix says which cells of this image resemble each other rather
 * than how far all of them sit from the origin (sigmoid latents and ReLU maps are all positive, and
 * uncentred their cosines crowd near 1).
 */
export function cellSimilarities(features: tf.Tensor4D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w, c] = features.shape;
    const flat = tf.reshape(features, [b, h * w, c]);
    const centred = tf.sub(flat, tf.mean(flat, 1, true));
    const norm = tf.sqrt(tf.add(tf.sum(tf.square(centred), -1, true), 1e-12));
    const unit = tf.div(centred, norm);
    return tf.matMul(unit, unit, false, true) as tf.Tensor3D;
  });
}

/** Identity forwards, no gradient backwards (TF.js has no stop_gradient op). */
const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as <T extends tf.Tensor>(x: T) => T;

/**
 * Mean |S_deep − S_shallow| over cell pairs, with the shallow side held fixed: the deep latents learn to keep
 * the spatial layout the early layers still see, so a deep cell beside a part stops looking like the cell on
 * it and a prototype's peak lands on the part. Shallow maps with a finer grid are average-pooled to the deep
 * grid (their side must be a multiple of it).
 */
export function alignmentLoss(shallow: tf.Tensor4D, deep: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [, sh, sw] = shallow.shape;
    const [, dh, dw] = deep.shape;
    if (sh % dh !== 0 || sw % dw !== 0 || sh / dh !== sw / dw) {
      throw new Error(`alignment: shallow grid ${sh}×${sw} is not a multiple of the deep grid ${dh}×${dw}`);
    }
    const k = sh / dh;
    const pooled = k === 1 ? shallow : (tf.avgPool(shallow, k, k, 'valid') as tf.Tensor4D);
    const target = stopGradient(cellSimilarities(pooled));
    return tf.mean(tf.abs(tf.sub(cellSimilarities(deep), target))) as tf.Scalar;
  });
}
