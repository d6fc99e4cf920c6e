// ReLU's gradient from its output rather than its input, so training keeps one activation per ReLU, not two.
import * as tf from '@tensorflow/tfjs';
import { RELU_GRAD } from '../native';

/*
 * tfjs-core saves a ReLU's input for the backward pass. In a ResNet that input is the batch norm's output,
 * which nothing else needs: saving the ReLU's output instead (which the next convolution keeps anyway) lets
 * the batch-norm output die in the forward pass, as PyTorch's in-place ReLU does. The gradient is the same
 * to the bit: relu(x) > 0 exactly when x > 0.
 */
export const reluGrad: tf.GradConfig = {
  kernelName: tf.Relu,
  outputsToSave: [true],
  gradFunc: (dy, saved) => {
    const [y] = saved as [tf.Tensor];
    const g = dy as tf.Tensor;
    // One native pass where the oneDNN kernels run; Step, Cast and Multiply elsewhere.
    if (g.dtype === 'float32' && tf.getKernel(RELU_GRAD, tf.getBackend())) {
      return { x: () => tf.engine().runKernel(RELU_GRAD, { dy: g, y }) as tf.Tensor };
    }
    return { x: () => tf.mul(g, tf.cast(tf.step(y), 'float32')) };
  },
};
