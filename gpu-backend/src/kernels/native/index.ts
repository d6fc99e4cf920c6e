// Registers the native addon's kernels on wasm: which of wasm's kernels they replace, and the ones they add.

import type { NativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import { type KernelReplacement, registerOwnKernels, replaceKernels, restoreKernels } from '../replacement';
import { backpropFilter, backpropInput, convKernel, FilterTokens } from './convolution';
import { copies } from './copies';
import type { Replacement } from './heap';
import { matMulKernel } from './matmul';
import { maxPoolGradKernel } from './pooling';
import {
  ADAM_STEP,
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  fusedBatchNormKernel,
  RELU_GRAD,
  trainingKernels,
} from './training-ops';

export { ADAM_STEP, BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD, RELU_GRAD };

/*
 * Why on the wasm backend rather than a backend of its own: every other op (the ProtoPool head's small
 * ops, element-wise arithmetic) keeps wasm's SIMD kernels, and a tensor's data already sits in one flat
 * buffer, the wasm heap, which the addon reads and writes in place (heap.ts).
 *
 * Each kernel handles what oneDNN does exactly the same as TF.js (float32, NHWC, bias of one value per
 * channel, linear or ReLU activation, matMul batches that are equal or broadcast from 1) and hands
 * anything else to the kernel it replaced.
 */

export const NATIVE_KERNELS = [
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'BatchMatMul',
  '_FusedMatMul',
  'MaxPoolGrad',
  'Slice',
  'PadV2',
  'FusedBatchNorm',
] as const;

/** The addon's kernels as replacements of wasm's (which stay as their fallbacks). */
function replacements(native: NativeKernels): KernelReplacement[] {
  const tokens = new FilterTokens();
  const impl: Record<(typeof NATIVE_KERNELS)[number], Replacement> = {
    Conv2D: convKernel(native, false, tokens),
    FusedConv2D: convKernel(native, true, tokens),
    Conv2DBackpropInput: backpropInput(native, tokens),
    Conv2DBackpropFilter: backpropFilter(native),
    BatchMatMul: matMulKernel(native),
    _FusedMatMul: matMulKernel(native),
    MaxPoolGrad: maxPoolGradKernel(native),
    ...copies(native),
    FusedBatchNorm: fusedBatchNormKernel(native),
  };
  return NATIVE_KERNELS.map((kernelName) => ({ kernelName, kernelFunc: impl[kernelName] }));
}

const LAYER = 'native';
const OWN = [ADAM_STEP, BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD, RELU_GRAD];

/** Replaces wasm's kernels with the addon's (over wasm's faster ones, their fallbacks) and adds its own. */
export function registerNativeKernels(native: NativeKernels, backendName = 'wasm'): void {
  replaceKernels(LAYER, replacements(native), backendName);
  registerOwnKernels(trainingKernels(native), backendName);
}

/** Puts back the kernels `registerNativeKernels` replaced (benchmarks and the numeric tests compare both). */
export function removeNativeKernels(backendName = 'wasm'): void {
  restoreKernels(LAYER, NATIVE_KERNELS, backendName);
  for (const kernelName of OWN)
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
}
