// Batched matMul in oneDNN (BatchMatMul, _FusedMatMul): transposes, batch broadcast from 1, bias and ReLU.
import type { NativeKernels } from '@protopool/native-kernels';
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { allFloat, type KernelArgs, type KernelFunc, produce, type Replacement, size } from './heap';

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  activation?: string;
}

export function matMulKernel(native: NativeKernels): Replacement {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const a = args.attrs as unknown as MatMulAttrs;
    const { a: left, b: right, bias } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const activation = a.activation ?? 'linear';
    const ra = left!.shape;
    const rb = right!.shape;
    const [m, k] = a.transposeA ? [ra.at(-1)!, ra.at(-2)!] : [ra.at(-2)!, ra.at(-1)!];
    const n = a.transposeB ? rb.at(-2)! : rb.at(-1)!;
    const batchA = size(left!) / (m * k);
    const batchB = size(right!) / (k * n);
    // Leading dimensions must be the same (or one side all 1s): other broadcasts go to the stock kernel.
    const lead = (s: number[]) => s.slice(0, -2).join(',');
    const batchesMatch = lead(ra) === lead(rb) || batchA === 1 || batchB === 1;
    const supported =
      allFloat(left, right, bias) &&
      batchesMatch &&
      m * k * n > 0 &&
      (activation === 'linear' || activation === 'relu') &&
      (!bias || size(bias) === n) &&
      !args.inputs.preluActivationWeights;
    if (!supported) return fallback(args);
    const outShape = [...(batchA >= batchB ? ra : rb).slice(0, -2), m, n];
    const geometry = Int32Array.of(batchA, batchB, m, k, n, a.transposeA ? 1 : 0, a.transposeB ? 1 : 0);
    return produce(args.backend as BackendWasm, outShape, (view, c) =>
      native.matMul(view(left!), view(right!), bias ? view(bias) : null, c, geometry, activation === 'relu'),
    );
  };
}
