// The max-pool gradient in C++ (first maximum of each window, as TF.js's cpu backend rules).
import type { NativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  allFloat,
  type KernelArgs,
  type KernelFunc,
  type Pad,
  type Pair,
  produce,
  type Replacement,
  size,
} from './heap';

interface PoolAttrs {
  filterSize: Pair;
  strides: Pair;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function maxPoolGradKernel(native: NativeKernels): Replacement {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const a = args.attrs as unknown as PoolAttrs;
    const { dy, input } = args.inputs as Record<string, tf.TensorInfo>;
    if (!allFloat(dy, input) || size(input!) === 0) return fallback(args);
    const [n, h, w, c] = input!.shape as [number, number, number, number];
    const info = tf.backend_util.computePool2DInfo(
      [n, h, w, c],
      a.filterSize,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    const geometry = Int32Array.of(
      n,
      h,
      w,
      c,
      info.filterHeight,
      info.filterWidth,
      info.outHeight,
      info.outWidth,
      info.strideHeight,
      info.strideWidth,
      info.padInfo.top,
      info.padInfo.left,
    );
    return produce(args.backend as BackendWasm, input!.shape, (view, dx) =>
      native.maxPoolGrad(view(dy!), view(input!), dx, geometry),
    );
  };
}
