// Conv2D whose bias-free linear case is a plain convolution, so backprop computes only the gradients it needs.
import * as tf from '@tensorflow/tfjs';
import type { Conv2D as LayersConv2D } from '@tensorflow/tfjs-layers/dist/layers/convolutional';
import { conv2dState, stockLayerClass } from '../tfjs-internals';

/*
 * Why: tfjs-layers runs every 2-D convolution through `tf.fused.conv2d`, even one with no bias and no
 * activation, and that op's custom gradient computes the input's gradient and the filter's together, whether
 * or not anything needs the first. A backbone's stem convolves the image, which needs no gradient: in a
 * ResNet-18 training step at 64 px that wasted one 7×7 backward pass over 50 images (~25 ms of ~1.1 s). As
 * `tf.conv2d` each gradient is its own function, and backprop asks only for those on a path to a variable.
 * The forward pass runs the same kernel with the same arguments (same numbers); the saved model format is
 * unchanged (same class name, same config). Layers with a bias or an activation keep tfjs-layers' own path.
 */

/** tfjs-layers' class, taken from the serialisation registry before this module's subclass replaces it. */
const Base = stockLayerClass<typeof LayersConv2D>('Conv2D');

export class Conv2D extends Base {
  static override className = 'Conv2D';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[] {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    const self = conv2dState(this);
    const plain =
      x.rank === 4 &&
      self.bias == null &&
      self.activation.getClassName() === 'linear' &&
      self.dataFormat === 'channelsLast' &&
      self.padding !== 'causal';
    if (!plain) return super.call(inputs, kwargs);
    return tf.tidy(() =>
      tf.conv2d(
        x as tf.Tensor4D,
        self.kernel.read() as tf.Tensor4D,
        self.strides,
        self.padding as 'valid' | 'same',
        'NHWC',
        self.dilationRate,
      ),
    );
  }
}

tf.serialization.registerClass(Conv2D);

/** A convolution layer (as `tf.layers.conv2d`) whose bias-free linear case backprops only what it must. */
export function conv2d(args: ConstructorParameters<typeof LayersConv2D>[0]): Conv2D {
  return new Conv2D(args);
}
