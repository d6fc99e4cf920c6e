// MaxPoolGrad from whole-tensor ops (../maxpool-grad.ts): wasm's own drops gradient under asymmetric 'same' padding.
import * as tf from '@tensorflow/tfjs';
import { maxPoolGrad as maxPoolGradOf } from '../maxpool-grad';
import { replacing } from '../replacement';

// Every window, although wasm's own is faster on overlapping ones: it drops gradient at the bottom/right
// edge under asymmetric 'same' padding (ResNet's stem pool; see maxpool-grad.ts).
export const maxPoolGrad = replacing<tf.MaxPoolGradInputs, tf.MaxPoolGradAttrs>(
  tf.MaxPoolGrad,
  (args, previous) => {
    const dy = args.inputs.dy as tf.Tensor4D;
    const input = args.inputs.input as tf.Tensor4D;
    const output = args.inputs.output as tf.Tensor4D;
    if (dy.dtype !== 'float32' || input.dtype !== 'float32') return previous(args);
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs;
    return maxPoolGradOf(dy, input, output, filterSize, strides, pad, dimRoundingMode);
  },
);
