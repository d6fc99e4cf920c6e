// Slice and PadV2 as row copies: a ResNet's explicit padding and its gradient (wasm walks them element by element).
import type { NativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, type KernelFunc, produce, type Replacement, size } from './heap';

function sliceKernel(native: NativeKernels): Replacement {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const { x } = args.inputs as Record<string, tf.TensorInfo>;
    const a = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    if ((x!.dtype !== 'float32' && x!.dtype !== 'int32') || x!.shape.length < 1 || x!.shape.length > 4) {
      return fallback(args);
    }
    const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, a.begin, a.size) as [
      number[],
      number[],
    ];
    if (extent.some((d) => d === 0)) return fallback(args);
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput(extent, x!.dtype);
    try {
      const view = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array | Int32Array;
      native.slice(
        view(x!),
        Int32Array.from(x!.shape),
        Int32Array.from(start),
        Int32Array.from(extent),
        view(out),
      );
    } catch (err) {
      backend.disposeData(out.dataId);
      throw err;
    }
    return out;
  };
}

function padKernel(native: NativeKernels): Replacement {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const { x } = args.inputs as Record<string, tf.TensorInfo>;
    const a = args.attrs as unknown as { paddings: [number, number][]; constantValue: number };
    if (x!.dtype !== 'float32' || x!.shape.length < 1 || x!.shape.length > 4 || size(x!) === 0)
      return fallback(args);
    const outShape = x!.shape.map((d, i) => a.paddings[i]![0] + d + a.paddings[i]![1]);
    return produce(args.backend as BackendWasm, outShape, (view, out) =>
      native.pad(
        view(x!),
        Int32Array.from(x!.shape),
        Int32Array.from(a.paddings.map((p) => p[0])),
        Int32Array.from(outShape),
        a.constantValue,
        out,
      ),
    );
  };
}

/** The replacements for wasm's Slice and PadV2. */
export function copies(native: NativeKernels): { Slice: Replacement; PadV2: Replacement } {
  return { Slice: sliceKernel(native), PadV2: padKernel(native) };
}
