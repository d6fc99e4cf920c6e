// Batch normalisation whose training step is one fused op with its own gradient, where the engine has it.
import * as tf from '@tensorflow/tfjs';
import type { BatchNormalization as LayersBatchNorm } from '@tensorflow/tfjs-layers/dist/layers/normalization';
import { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD } from '../kernels/native';
import { batchNormState, stockLayerClass } from '../tfjs-internals';

/*
 * Why: tfjs-layers trains batch norm as moments (mean, x − mean, its square, their means) followed by the
 * normalisation, and autograd keeps x − mean and the normalised output alive until the backward pass —
 * about 2.5 activations per layer beside the convolution's own, most of the 2.2× PyTorch's peak memory a
 * ResNet had in training. As one op (the native kernels' BATCH_NORM_TRAINING) the backward pass keeps only
 * x and four per-channel vectors, and both directions take one pass over the activation.
 *
 * Where the engine lacks the fused kernel (wasm alone, cpu, tfjs-node), or the layer is not a channels-last
 * rank-4 one with both γ and β, the layer runs tfjs-layers' own code. The moving averages are updated with
 * tfjs-layers' own formula, and the saved model format is unchanged (same class name, same config).
 */

/** [y, mean, variance] of training-mode batch norm over every axis but the last. */
export function batchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D] {
  return tf.engine().runKernel(BATCH_NORM_TRAINING, { x, gamma, beta }, { epsilon }) as unknown as [
    tf.Tensor4D,
    tf.Tensor1D,
    tf.Tensor1D,
  ];
}

tf.registerGradient({
  kernelName: BATCH_NORM_TRAINING,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [dy, dMean, dVariance] = dys as tf.Tensor[];
    const [x, gamma, mean, variance] = saved as tf.Tensor[];
    // One kernel gives all three gradients; the engine asks for each separately, right after this.
    const [dx, dGamma, dBeta] = tf.engine().runKernel(
      BATCH_NORM_TRAINING_GRAD,
      {
        x: x!,
        dy: dy!,
        gamma: gamma!,
        mean: mean!,
        variance: variance!,
        dMean: dMean!,
        dVariance: dVariance!,
      },
      attrs as unknown as tf.NamedAttrMap,
    ) as unknown as tf.Tensor[];
    return { x: () => dx!, gamma: () => dGamma!, beta: () => dBeta! };
  },
});

/** tfjs-layers' class, taken from the serialisation registry before this module's subclass replaces it. */
const Base = stockLayerClass<typeof LayersBatchNorm>('BatchNormalization');

export class BatchNormalization extends Base {
  static override className = 'BatchNormalization';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[] {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    const self = batchNormState(this);
    const fused =
      kwargs.training === true &&
      x.rank === 4 &&
      x.dtype === 'float32' &&
      (self.axis === -1 || self.axis === 3) &&
      self.center &&
      self.scale &&
      tf.getKernel(BATCH_NORM_TRAINING, tf.getBackend()) !== undefined;
    if (!fused) return super.call(inputs, kwargs);
    return tf.tidy(() => {
      const [y, mean, variance] = batchNormTraining(
        x as tf.Tensor4D,
        self.gamma.read() as tf.Tensor1D,
        self.beta.read() as tf.Tensor1D,
        self.epsilon,
      );
      // tfjs-layers' update, term for term: v ← v − (v − batch)·(1 − momentum).
      for (const [variable, value] of [
        [self.movingMean, mean],
        [self.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const old = variable.read();
          variable.write(tf.sub(old, tf.mul(tf.sub(old, value), 1 - self.momentum)));
        });
      }
      return y;
    });
  }
}

tf.serialization.registerClass(BatchNormalization);

/** A batch-norm layer (as `tf.layers.batchNormalization`) that trains through the fused op where it can. */
export function batchNormalization(
  args: ConstructorParameters<typeof LayersBatchNorm>[0],
): BatchNormalization {
  return new BatchNormalization(args);
}
