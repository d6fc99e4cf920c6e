// Conv2DBackpropFilter, which wasm lacks, as one forward convolution or a matMul (../conv-grads.ts).
import * as tf from '@tensorflow/tfjs';
import { conv2dFilterGrad } from '../conv-grads';
import { kernel } from '../replacement';
import { checkNhwcDense } from './conv2d-backprop-input';

export const conv2dBackpropFilter = kernel<tf.Conv2DBackpropFilterInputs, tf.Conv2DBackpropFilterAttrs>(
  tf.Conv2DBackpropFilter,
  ({ inputs, attrs }) => {
    checkNhwcDense(tf.Conv2DBackpropFilter, attrs);
    const x = inputs.x as tf.Tensor4D;
    const dy = inputs.dy as tf.Tensor4D;
    return conv2dFilterGrad(x, dy, attrs.filterShape, attrs);
  },
);
