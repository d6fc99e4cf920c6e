// Distances between latent patches and prototypes, and ProtoPool's focal similarity (pure tensor maths).
import * as tf from '@tensorflow/tfjs';

export const DEFAULT_EPS = 1e-4;

/** d[b,h,w,m] = max(0, ‖z‖² − 2 z·p_m + ‖p_m‖²) for z: [B,H,W,D], prototypes: [M,D]. */
export function squaredDistances(z: tf.Tensor4D, prototypes: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, d] = z.shape;
    const m = prototypes.shape[0];
    const flat = tf.reshape(z, [b * h * w, d]);
    const zz = tf.sum(tf.square(flat), 1, true); // [N,1]
    const pp = tf.reshape(tf.sum(tf.square(prototypes), 1), [1, m]); // [1,M]
    const zp = tf.matMul(flat, prototypes, false, true); // [N,M]
    return tf.reshape(tf.relu(tf.add(tf.sub(zz, tf.mul(2, zp)), pp)), [b, h, w, m]);
  });
}

/** min and mean of d over the H×W positions: both [B,M]. */
export function poolDistances(d: tf.Tensor4D): { min: tf.Tensor2D; mean: tf.Tensor2D } {
  return tf.tidy(() => {
    const [b, h, w, m] = d.shape;
    const flat = tf.reshape(d, [b, h * w, m]);
    return { min: tf.min(flat, 1) as tf.Tensor2D, mean: tf.mean(flat, 1) as tf.Tensor2D };
  });
}

/**
 * Prototype `p`'s map for image `b` in similarity maps read back flat ([B,H,W,M]: cells row-major, prototypes
 * innermost): its `cells` = H·W similarities in row-major order.
 */
export function mapOf(maps: ArrayLike<number>, b: number, p: number, cells: number, m: number): number[] {
  return Array.from({ length: cells }, (_, cell) => maps[(b * cells + cell) * m + p]!);
}

/** sim(d) = log((d + 1) / (d + ε)): large for small distances, ~0 for large ones. */
export function similarity<T extends tf.Tensor>(d: T, eps = DEFAULT_EPS): T {
  return tf.tidy(() => tf.log(tf.div(tf.add(d, 1), tf.add(d, eps))) as T);
}

/** One prototype's own focal similarity, [B,M]: sim(min d) − sim(mean d), the reference form with a one-hot slot. */
export function prototypeFocal(
  pooled: { min: tf.Tensor2D; mean: tf.Tensor2D },
  eps = DEFAULT_EPS,
): tf.Tensor2D {
  return tf.tidy(() => tf.sub(similarity(pooled.min, eps), similarity(pooled.mean, eps)));
}

/** Each prototype's own focal similarity on latents z [B,H,W,D] against prototypes [M,D]: [B,M]. */
export function latentFocal(z: tf.Tensor4D, prototypes: tf.Tensor2D, eps = DEFAULT_EPS): tf.Tensor2D {
  return tf.tidy(() => prototypeFocal(poolDistances(squaredDistances(z, prototypes)), eps));
}

/** Mixes per-prototype values [B,M] into per-slot values [B, C·K] with the assignment q: [C,M,K]. */
export function mixBySlots(perPrototype: tf.Tensor2D, q: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => {
    const [c, m, k] = q.shape;
    const qFlat = tf.reshape(tf.transpose(q, [1, 0, 2]), [m, c * k]);
    return tf.matMul(perPrototype, qFlat);
  });
}

/**
 * Focal similarity per slot, [B, C·K] (slot j belongs to class ⌊j/K⌋).
 * 'reference' (the authors' code, the default): sim(Σ_m q·dmin) − sim(Σ_m q·dmean).
 * 'paper' (the paper's text): Σ_m q · (max_hw sim(d) − mean_hw sim(d)).
 */
export function focalSimilarity(
  variant: 'reference' | 'paper',
  d: tf.Tensor4D,
  pooled: { min: tf.Tensor2D; mean: tf.Tensor2D },
  q: tf.Tensor3D,
  eps = DEFAULT_EPS,
): tf.Tensor2D {
  return tf.tidy(() => {
    if (variant === 'reference') {
      return tf.sub(similarity(mixBySlots(pooled.min, q), eps), similarity(mixBySlots(pooled.mean, q), eps));
    }
    const [b, h, w, m] = d.shape;
    const s = tf.reshape(similarity(d, eps), [b, h * w, m]);
    return mixBySlots(tf.sub(tf.max(s, 1), tf.mean(s, 1)) as tf.Tensor2D, q);
  });
}
