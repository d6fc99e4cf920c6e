// Registers the training kernels wasm lacks or runs slowly, built from kernels it runs fast.
import * as tf from '@tensorflow/tfjs';
import { registerFastGradients, restoreStockGradients } from './bn-grad';
import { conv2dFilterGrad, conv2dInputGrad } from './conv-grads';
import { registerFastKernels, restoreStockKernels } from './fast-kernels';

type ConvAttrs = {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
};

function checkAttrs(kernel: string, attrs: ConvAttrs): void {
  const d = attrs.dilations ?? 1;
  if (attrs.dataFormat !== 'NHWC' || (typeof d === 'number' ? d !== 1 : d[0] !== 1 || d[1] !== 1)) {
    throw new Error(`${kernel} on this engine supports NHWC with dilation 1 only`);
  }
}

export const CONV_GRADIENT_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;

/**
 * Which kernels training uses on wasm. 'fast': everything in this folder (conv gradients, Tile, Sum,
 * Mean, transposed BatchMatMul, MaxPoolGrad, FusedBatchNorm, Square,
 * zero-copy Identity, batch-norm and mean gradients). 'baseline': this repo's
 * first version, kept for benchmarks: conv gradients with the filter flipped by wasm's own Reverse and
 * dilated strides, stock Tile/Sum/Mean/BatchMatMul/MaxPoolGrad/FusedBatchNorm/Square/Identity and stock gradients.
 */
export type KernelSet = 'fast' | 'baseline';

function registerConv(backendName: string, legacyFlip: boolean): void {
  for (const kernelName of CONV_GRADIENT_KERNELS) {
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  }
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as ConvAttrs;
      checkAttrs('Conv2DBackpropFilter', a);
      const { x, dy } = inputs as { x: tf.Tensor4D; dy: tf.Tensor4D };
      return conv2dFilterGrad(x, dy, a.filterShape!, a.strides, a.pad, a.dimRoundingMode, legacyFlip);
    },
  });
  tf.registerKernel({
    kernelName: 'Conv2DBackpropInput',
    backendName,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as ConvAttrs;
      checkAttrs('Conv2DBackpropInput', a);
      const { dy, filter } = inputs as { dy: tf.Tensor4D; filter: tf.Tensor4D };
      return conv2dInputGrad(a.inputShape!, dy, filter, a.strides, a.pad, a.dimRoundingMode, legacyFlip);
    },
  });
}

/** Switches the kernel set for `backendName` (idempotent; gradients are global but wasm-only). */
export function useKernelSet(set: KernelSet, backendName = 'wasm'): void {
  registerConv(backendName, set === 'baseline');
  if (set === 'fast') {
    registerFastKernels(backendName);
    registerFastGradients();
  } else {
    restoreStockKernels(backendName);
    restoreStockGradients();
  }
}

/**
 * Called by the engine when wasm starts: installs the 'fast' set. Kernel functions may call ops: the
 * engine stops recording gradients while a kernel runs, and tidy keeps only the result.
 */
export function registerConvGradientKernels(backendName: string): void {
  useKernelSet('fast', backendName);
}
