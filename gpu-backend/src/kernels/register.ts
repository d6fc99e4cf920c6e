// Registers the convolution gradient kernels wasm lacks (or runs slowly) from kernels it has.
import * as tf from '@tensorflow/tfjs';
import { conv2dFilterGrad, conv2dInputGrad } from './conv-grads';

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
 * Replaces Conv2DBackpropFilter and Conv2DBackpropInput for `backendName`. Kernel functions may call
 * ops: the engine stops recording gradients while a kernel runs, and tidy keeps only the result.
 */
export function registerConvGradientKernels(backendName: string): void {
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
      return conv2dFilterGrad(x, dy, a.filterShape!, a.strides, a.pad, a.dimRoundingMode);
    },
  });
  tf.registerKernel({
    kernelName: 'Conv2DBackpropInput',
    backendName,
    kernelFunc: ({ inputs, attrs }) => {
      const a = attrs as unknown as ConvAttrs;
      checkAttrs('Conv2DBackpropInput', a);
      const { dy, filter } = inputs as { dy: tf.Tensor4D; filter: tf.Tensor4D };
      return conv2dInputGrad(a.inputShape!, dy, filter, a.strides, a.pad, a.dimRoundingMode);
    },
  });
}
