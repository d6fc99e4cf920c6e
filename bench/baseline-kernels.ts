// The benchmarks' baseline kernel set: this repo's first wasm kernels, to measure what the current ones gain.
import * as tf from '@tensorflow/tfjs';
import {
  type ConvGeometry,
  dilate,
  filterGradByConv,
  inputGradByFlippedConv,
  padInfo,
  pair,
} from '../gpu-backend/src/kernels/conv-grads';
import { padOrCrop } from '../gpu-backend/src/kernels/conv-matmul';
import { registerGradients, restoreWasmGradients } from '../gpu-backend/src/kernels/gradients';
import { registerOwnKernels } from '../gpu-backend/src/kernels/replacement';
import { registerWasmKernels, restoreWasmKernels } from '../gpu-backend/src/kernels/wasm';
import { checkNhwcDense } from '../gpu-backend/src/kernels/wasm/conv2d-backprop-input';

/*
 * 'fast' is what the engine installs (gpu-backend/src/kernels). 'baseline' is the first version: wasm's
 * own Tile, Sum, Mean, BatchMatMul, MaxPoolGrad, FusedBatchNorm, Square, Identity and comparisons, tfjs-core's
 * gradients, and convolution gradients with the filter flipped by wasm's own Reverse, 1×1 input gradients
 * as a flagged matMul undone by dilation, 1×1 filter gradients as a strided slice and a flagged matMul.
 */
export type KernelSet = 'fast' | 'baseline';

function inputGradBaseline(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  g: ConvGeometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [sh, sw] = pair(g.strides);
    const [kh, kw] = filter.shape;
    const [, h, w] = xShape;
    const { top, left } = padInfo(xShape, filter.shape, g);
    if (kh === 1 && kw === 1 && top === 0 && left === 0) {
      const [b, oh, ow, co] = dy.shape;
      const ci = filter.shape[2];
      const prod = tf.matMul(tf.reshape(dy, [b * oh * ow, co]), tf.reshape(filter, [ci, co]), false, true);
      const d = dilate(tf.reshape(prod, [b, oh, ow, ci]), sh, sw);
      return padOrCrop(d, 0, h - d.shape[1], 0, w - d.shape[2]);
    }
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    return inputGradByFlippedConv(xShape, dy, flipped, [sh, sw], top, left);
  });
}

function filterGradBaseline(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  g: ConvGeometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [sh, sw] = pair(g.strides);
    const [kh, kw, ci, co] = filterShape;
    const [b, oh, ow] = dy.shape;
    const { top, left } = padInfo(x.shape, filterShape, g);
    if (kh === 1 && kw === 1) {
      const xp = padOrCrop(
        x,
        top,
        (oh - 1) * sh + 1 - top - x.shape[1],
        left,
        (ow - 1) * sw + 1 - left - x.shape[2],
      );
      const xs = sh === 1 && sw === 1 ? xp : tf.stridedSlice(xp, [0, 0, 0, 0], xp.shape, [1, sh, sw, 1]);
      const prod = tf.matMul(
        tf.reshape(xs, [b * oh * ow, ci]),
        tf.reshape(dy, [b * oh * ow, co]),
        true,
        false,
      );
      return tf.reshape(prod, filterShape);
    }
    return filterGradByConv(x, dy, filterShape, [sh, sw], top, left);
  });
}

const baselineConvKernels = [
  {
    kernelName: tf.Conv2DBackpropFilter,
    kernelFunc: (({ inputs, attrs }: { inputs: tf.NamedTensorMap; attrs: tf.Conv2DBackpropFilterAttrs }) => {
      checkNhwcDense(tf.Conv2DBackpropFilter, attrs);
      return filterGradBaseline(inputs.x as tf.Tensor4D, inputs.dy as tf.Tensor4D, attrs.filterShape, attrs);
    }) as unknown as tf.KernelConfig['kernelFunc'],
  },
  {
    kernelName: tf.Conv2DBackpropInput,
    kernelFunc: (({ inputs, attrs }: { inputs: tf.NamedTensorMap; attrs: tf.Conv2DBackpropInputAttrs }) => {
      checkNhwcDense(tf.Conv2DBackpropInput, attrs);
      return inputGradBaseline(
        attrs.inputShape as [number, number, number, number],
        inputs.dy as tf.Tensor4D,
        inputs.filter as tf.Tensor4D,
        attrs,
      );
    }) as unknown as tf.KernelConfig['kernelFunc'],
  },
];

/** Switches wasm's kernels and gradients to `set` (idempotent). */
export function useKernelSet(set: KernelSet, backendName = 'wasm'): void {
  if (set === 'fast') {
    registerWasmKernels(backendName);
    registerGradients();
  } else {
    restoreWasmKernels(backendName);
    restoreWasmGradients();
    registerOwnKernels(baselineConvKernels, backendName);
  }
}
