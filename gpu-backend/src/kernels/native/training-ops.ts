// Kernels TF.js does not have: fused training-mode batch norm and its gradient, ReLU's gradient in one pass.
import type { NativeKernels } from '@protopool/native-kernels';
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { produce, produceAll } from './heap';

/**
 * Kernels TF.js does not have: training-mode batch norm as one op (see model/batch-norm.ts) and its
 * gradient, each one pass over the activation instead of a dozen element-wise kernels, keeping nothing
 * full-size for the backward pass but the input.
 */
export const BATCH_NORM_TRAINING = 'ProtoPoolBatchNormTraining';
export const BATCH_NORM_TRAINING_GRAD = 'ProtoPoolBatchNormTrainingGrad';

function batchNormKernels(native: NativeKernels): tf.KernelConfig[] {
  const channelsOf = (x: tf.TensorInfo) => x.shape.at(-1)!;
  return [
    {
      kernelName: BATCH_NORM_TRAINING,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, gamma, beta } = inputs as Record<string, tf.TensorInfo>;
        const c = channelsOf(x!);
        return produceAll(backend as BackendWasm, [x!.shape, [c], [c]], (view, [y, mean, variance]) =>
          native.batchNormTraining(
            view(x!),
            view(gamma!),
            view(beta!),
            y!,
            mean!,
            variance!,
            c,
            attrs!.epsilon as number,
          ),
        );
      },
    },
    {
      kernelName: BATCH_NORM_TRAINING_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, dy, gamma, mean, variance, dMean, dVariance } = inputs as Record<
          string,
          tf.TensorInfo | undefined
        >;
        const c = channelsOf(x!);
        return produceAll(backend as BackendWasm, [x!.shape, [c], [c]], (view, [dx, dGamma, dBeta]) =>
          native.batchNormTrainingGrad(
            view(x!),
            view(dy!),
            view(gamma!),
            view(mean!),
            view(variance!),
            dMean ? view(dMean) : null,
            dVariance ? view(dVariance) : null,
            dx!,
            dGamma!,
            dBeta!,
            c,
            attrs!.epsilon as number,
          ),
        );
      },
    },
  ];
}

/** ReLU's gradient in one pass (see relu-grad.ts), where wasm needs Step, Cast and Multiply. */
export const RELU_GRAD = 'ProtoPoolReluGrad';

/** Every kernel this file adds, for the wasm backend. */
export function trainingKernels(native: NativeKernels): tf.KernelConfig[] {
  return [
    ...batchNormKernels(native),
    {
      kernelName: RELU_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend }) => {
        const { dy, y } = inputs as Record<string, tf.TensorInfo>;
        return produce(backend as BackendWasm, y!.shape, (view, dx) =>
          native.reluGrad(view(dy!), view(y!), dx),
        );
      },
    },
  ];
}
