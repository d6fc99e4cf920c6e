// ProtoPool's training losses (pure tensor maths); the weights are the spec's defaults.
import * as tf from '@tensorflow/tfjs';

export interface LossWeights {
  ce: number;
  clst: number;
  sep: number;
  l1: number;
  ortho: number;
}

export const DEFAULT_LOSS_WEIGHTS: LossWeights = { ce: 1, clst: 0.8, sep: -0.08, l1: 1e-4, ortho: 1 };

/**
 * Mean cross-entropy (or the sum over the batch, for evaluation's running totals); with mixup the targets are
 * λ·onehot(a) + (1−λ)·onehot(b).
 */
export function crossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  mix?: { labelsB: tf.Tensor1D; lambda: number },
  reduction: 'mean' | 'sum' = 'mean',
) {
  return tf.tidy(() => {
    const c = logits.shape[1];
    let target = tf.oneHot(tf.cast(labels, 'int32'), c).toFloat();
    if (mix) {
      const other = tf.oneHot(tf.cast(mix.labelsB, 'int32'), c).toFloat();
      target = tf.add(tf.mul(target, mix.lambda), tf.mul(other, 1 - mix.lambda));
    }
    const perExample = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1));
    return (reduction === 'sum' ? tf.sum(perExample) : tf.mean(perExample)) as tf.Scalar;
  });
}

/**
 * Orthogonality of each class's K slot vectors L[c,:,k] (over M): Σ of all pairwise cosine
 * similarities, diagonal included, / (C·K) − 1. Zero when a class's slots pick disjoint prototypes.
 */
export function orthogonalityLoss(slotLogits: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const [c, , k] = slotLogits.shape;
    // PyTorch's cosine_similarity clamps the norm at 1e-8; so do we.
    const norm = tf.maximum(tf.norm(slotLogits, 'euclidean', 1, true), 1e-8);
    const unit = tf.div(slotLogits, norm); // [C,M,K]
    const gram = tf.matMul(unit, unit, true, false); // [C,K,K]
    return tf.sub(tf.div(tf.sum(gram), c * k), 1) as tf.Scalar;
  });
}

/**
 * The reference code's distance loss: per image, a mask of the `topK` prototypes with the largest
 * `score`; cost = maxDist − max((maxDist − dmin)·mask), i.e. the smallest masked distance. `score` only
 * chooses the mask (top-k indices carry no gradient), as the reference's `.detach()` intends.
 */
function maskedMinDistance(
  minDist: tf.Tensor2D,
  score: tf.Tensor2D,
  topK: number,
  maxDist: number,
): tf.Scalar {
  return tf.tidy(() => {
    const m = score.shape[1];
    const { indices } = tf.topk(score, topK);
    const mask = tf.sum(tf.oneHot(indices, m), 1); // [B,M], 1 on the chosen prototypes
    const inverted = tf.max(tf.mul(tf.sub(maxDist, minDist), mask), 1);
    return tf.mean(tf.sub(maxDist, inverted)) as tf.Scalar;
  });
}

/** Per image, the assignment of its own class: q[y_b], [B,M,K]. */
function labelPresence(q: tf.Tensor3D, labels: tf.Tensor1D): tf.Tensor3D {
  return tf.tidy(() => tf.gather(q, tf.cast(labels, 'int32')) as tf.Tensor3D);
}

/** Clustering: pull each image towards the K prototypes its class uses most. maxDist = D (sigmoid latents). */
export function clusterLoss(
  minDist: tf.Tensor2D,
  q: tf.Tensor3D,
  labels: tf.Tensor1D,
  maxDist: number,
): tf.Scalar {
  return tf.tidy(() => {
    const k = q.shape[2];
    const presence = tf.sum(labelPresence(q, labels), 2) as tf.Tensor2D;
    return maskedMinDistance(minDist, presence, k, maxDist);
  });
}

/** Separation: the smallest distance to the M−K prototypes its class uses least (subtracted in the total). */
export function separationLoss(
  minDist: tf.Tensor2D,
  q: tf.Tensor3D,
  labels: tf.Tensor1D,
  maxDist: number,
): tf.Scalar {
  return tf.tidy(() => {
    const [, m, k] = q.shape;
    const absence = tf.sum(tf.sub(1, labelPresence(q, labels)), 2) as tf.Tensor2D;
    return maskedMinDistance(minDist, absence, m - k, maxDist);
  });
}

/** 1 where last-layer column j belongs to class row c (j = c·K + k): [C, C·K]. */
export function classIdentity(numClasses: number, slotsPerClass: number): tf.Tensor2D {
  return tf.tidy(() => {
    const cls = tf.cast(
      tf.floorDiv(tf.range(0, numClasses * slotsPerClass, 1, 'int32'), slotsPerClass),
      'int32',
    );
    return tf.transpose(tf.oneHot(cls, numClasses)).toFloat() as tf.Tensor2D;
  });
}

/** L1 of the last layer's off-class weights (those that let a slot vote for another class). */
export function lastLayerL1(lastLayer: tf.Tensor2D, identity: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.abs(tf.mul(lastLayer, tf.sub(1, identity)))) as tf.Scalar);
}
