// Batch norm in one pass each way (training as one op with its gradient; inference) and ReLU's gradient.
import type { NativeKernels } from '@protopool/native-kernels';
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { produce, produceAll, type Replacement } from './heap';

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

/** One Adam step (train/optimizer.ts) in one pass, where wasm takes about fourteen. */
export const ADAM_STEP = 'ProtoPoolAdam';

/** ReLU's gradient in one pass (see ../gradients/relu.ts), where wasm needs Step, Cast and Multiply. */
export const RELU_GRAD = 'ProtoPoolReluGrad';

/** Every kernel this file adds, for the wasm backend. */
export function trainingKernels(native: NativeKernels): tf.KernelConfig[] {
  return [
    ...batchNormKernels(native),
    {
      kernelName: ADAM_STEP,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { w, g, m, v } = inputs as Record<string, tf.TensorInfo>;
        const constants = Float32Array.from(attrs!.constants as number[]);
        return produceAll(
          backend as BackendWasm,
          [w!.shape, w!.shape, w!.shape],
          (view, [wOut, mOut, vOut]) =>
            native.adam(view(w!), view(g!), view(m!), view(v!), wOut!, mOut!, vOut!, constants),
        );
      },
    },
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

/** Inference-mode batch norm (FusedBatchNorm) in one multiply-add pass, where wasm takes three. */
export function fusedBatchNormKernel(native: NativeKernels): Replacement {
  return (args, fallback) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
    const c = x!.shape.at(-1)!;
    const perChannel = [mean, variance, offset, scale].every(
      (t) => !t || (t.shape.length === 1 && t.shape[0] === c),
    );
    const floats = [x, mean, variance, offset, scale].every((t) => !t || t.dtype === 'float32');
    if (!perChannel || !floats || x!.shape.some((d) => d === 0)) return fallback(args);
    return produce(args.backend as BackendWasm, x!.shape, (view, y) =>
      native.batchNormInference(
        view(x!),
        view(mean!),
        view(variance!),
        offset ? view(offset) : null,
        scale ? view(scale) : null,
        y,
        c,
        varianceEpsilon,
      ),
    );
  };
}
