// Conv2DBackpropInput as forward convolutions and matMuls (../conv-grads.ts): wasm's own is ~10x a convolution.
import * as tf from '@tensorflow/tfjs';
import { conv2dInputGrad } from '../conv-grads';
import { kernel } from '../replacement';

/** These gradients are written for NHWC and dilation 1, which is all tfjs's conv2d gradient asks for. */
export function checkNhwcDense(
  kernelName: string,
  attrs: { dataFormat: 'NHWC' | 'NCHW'; dilations?: number | [number, number] },
): void {
  const d = attrs.dilations ?? 1;
  if (attrs.dataFormat !== 'NHWC' || (typeof d === 'number' ? d !== 1 : d[0] !== 1 || d[1] !== 1)) {
    throw new Error(`${kernelName} on this engine supports NHWC with dilation 1 only`);
  }
}

export const conv2dBackpropInput = kernel<tf.Conv2DBackpropInputInputs, tf.Conv2DBackpropInputAttrs>(
  tf.Conv2DBackpropInput,
  ({ inputs, attrs }) => {
    checkNhwcDense(tf.Conv2DBackpropInput, attrs);
    const dy = inputs.dy as tf.Tensor4D;
    const filter = inputs.filter as tf.Tensor4D;
    return conv2dInputGrad(attrs.inputShape as [number, number, number, number], dy, filter, attrs);
  },
);
