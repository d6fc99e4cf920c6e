// UnsortedSegmentSum, which wasm lacks: the gradient of gather (ProtoPool gathers each image's class assignment q[y]).
import * as tf from '@tensorflow/tfjs';
import { kernel } from '../replacement';

// One matMul with a one-hot segment matrix, no per-element loops.
export const unsortedSegmentSum = kernel<tf.UnsortedSegmentSumInputs, tf.UnsortedSegmentSumAttrs>(
  tf.UnsortedSegmentSum,
  ({ inputs, attrs }) => {
    const x = inputs.x as tf.Tensor;
    const segmentIds = inputs.segmentIds as tf.Tensor;
    const { numSegments } = attrs;
    if (segmentIds.rank !== 1 || segmentIds.shape[0] !== x.shape[0]) {
      throw new Error('UnsortedSegmentSum: segment ids must be 1-D over the first axis of x');
    }
    return tf.tidy(() => {
      const [n, ...rest] = x.shape;
      // Ids outside [0, numSegments) one-hot to all zeros, so they are dropped as the op specifies.
      const members = tf.oneHot(tf.cast(segmentIds, 'int32'), numSegments).toFloat(); // [N,S]
      const flat = tf.reshape(tf.cast(x, 'float32'), [n!, rest.reduce((a, b) => a * b, 1)]);
      const summed = tf.reshape(tf.matMul(members, flat, true, false), [numSegments, ...rest]);
      return x.dtype === 'float32' ? summed : tf.cast(summed, x.dtype);
    });
  },
);
