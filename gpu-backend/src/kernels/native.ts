// Runs wasm's convolutions and matMuls in oneDNN (the native addon), on the wasm heap's own buffers.

import type { NativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/*
 * Why on the wasm backend rather than a backend of its own: every other op (batch norm's arithmetic,
 * pooling, the ProtoPool head's small ops) keeps wasm's SIMD kernels, and a tensor's data already sits in
 * one flat buffer, the wasm heap. The addon reads and writes that buffer in place through typed-array
 * views, so a native kernel copies no activation. Views are taken after the output is allocated,
 * because allocating may grow the heap and detach earlier views.
 *
 * Each kernel handles what oneDNN does exactly the same as TF.js (float32, NHWC, bias of one value per
 * channel, linear or ReLU activation, matMul batches that are equal or broadcast from 1) and hands
 * anything else to the kernel it replaced.
 */

export const NATIVE_KERNELS = [
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'BatchMatMul',
  '_FusedMatMul',
  'MaxPoolGrad',
  'Slice',
  'PadV2',
] as const;

type KernelFunc = tf.KernelConfig['kernelFunc'];
type KernelArgs = Parameters<KernelFunc>[0];
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Pair = number | [number, number];

interface ConvAttrs {
  strides: Pair;
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: Pair;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

interface PoolAttrs {
  filterSize: Pair;
  strides: Pair;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  activation?: string;
}

/** [n, h, w, c, kh, kw, co, oh, ow, sh, sw, top, left, bottom, right, dh, dw], as kernels.cc reads it. */
function convGeometry(info: tf.backend_util.Conv2DInfo): Int32Array {
  const p = info.padInfo;
  return Int32Array.of(
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
    info.dilationHeight,
    info.dilationWidth,
  );
}

const isNhwc = (a: ConvAttrs) => (a.dataFormat ?? 'NHWC') === 'NHWC';
const allFloat = (...ts: (tf.TensorInfo | undefined)[]) => ts.every((t) => !t || t.dtype === 'float32');
const size = (t: tf.TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

type View = (t: tf.TensorInfo) => Float32Array;

/** Allocates the outputs, runs `fill` on heap views, and frees the outputs if the addon throws. */
function produceAll(
  backend: BackendWasm,
  shapes: number[][],
  fill: (view: View, outs: Float32Array[]) => void,
): tf.TensorInfo[] {
  const outs = shapes.map((shape) => backend.makeOutput(shape, 'float32'));
  try {
    const view: View = (t) => backend.typedArrayFromHeap(t) as Float32Array;
    fill(view, outs.map(view));
  } catch (err) {
    for (const out of outs) backend.disposeData(out.dataId);
    throw err;
  }
  return outs;
}

function produce(
  backend: BackendWasm,
  shape: number[],
  fill: (view: View, out: Float32Array) => void,
): tf.TensorInfo {
  return produceAll(backend, [shape], (view, [out]) => fill(view, out!))[0]!;
}

function convKernel(
  native: NativeKernels,
  fused: boolean,
): (args: KernelArgs, fallback: KernelFunc) => tf.TensorInfo | tf.TensorInfo[] {
  return (args, fallback) => {
    const a = args.attrs as unknown as ConvAttrs;
    const { x, filter, bias } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const activation = a.activation ?? 'linear';
    const co = filter!.shape[3]!;
    const supported =
      isNhwc(a) &&
      allFloat(x, filter, bias) &&
      size(x!) > 0 &&
      (activation === 'linear' || activation === 'relu') &&
      (!bias || size(bias) === co) &&
      (!fused || !args.inputs.preluActivationWeights);
    if (!supported) return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      x!.shape as [number, number, number, number],
      filter!.shape as [number, number, number, number],
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
    );
    const backend = args.backend as BackendWasm;
    return produce(backend, info.outShape, (view, y) =>
      native.conv2d(
        view(x!),
        view(filter!),
        bias ? view(bias) : null,
        y,
        convGeometry(info),
        activation === 'relu',
      ),
    );
  };
}

function backpropInput(native: NativeKernels) {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const a = args.attrs as unknown as ConvAttrs;
    const { dy, filter } = args.inputs as Record<string, tf.TensorInfo>;
    if (!isNhwc(a) || !allFloat(dy, filter) || size(dy!) === 0) return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      a.inputShape!,
      filter!.shape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    return produce(args.backend as BackendWasm, a.inputShape!, (view, dx) =>
      native.conv2dBackpropInput(view(dy!), view(filter!), dx, convGeometry(info)),
    );
  };
}

function backpropFilter(native: NativeKernels) {
  return (args: KernelArgs, fallback: KernelFunc) => {
    const a = args.attrs as unknown as ConvAttrs;
    const { x, dy } = args.inputs as Record<string, tf.TensorInfo>;
    if (!isNhwc(a) || !allFloat(x, dy) || size(x!) === 0) return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      x!.shape as [number, number, number, number],
      a.filterShape!,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    return produce(args.backend as BackendWasm, a.filterShape!, (view, dw) =>
      native.conv2dBackpropFilter(view(x!), view(dy!), dw, convGeometry(info)),
    );
  };
}

function matMulKernel(native: NativeKernels) {
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

function maxPoolGradKernel(native: NativeKernels) {
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

/**
 * Kernels TF.js does not have: training-mode batch norm as one op (see model/batch-norm.ts) and its
 * gradient, each one pass over the activation instead of a dozen element-wise kernels, keeping nothing
 * full-size for the backward pass but the input.
 */
export const BATCH_NORM_TRAINING = 'ProtoPoolBatchNormTraining';
export const BATCH_NORM_TRAINING_GRAD = 'ProtoPoolBatchNormTrainingGrad';

function batchNormKernels(native: NativeKernels): tf.KernelConfig[] {
  const channelsOf = (x: tf.TensorInfo) => x.shape.at(-1)!;
  return [
    {
      kernelName: BATCH_NORM_TRAINING,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, gamma, beta } = inputs as Record<string, tf.TensorInfo>;
        const c = channelsOf(x!);
        return produceAll(backend as BackendWasm, [x!.shape, [c], [c]], (view, [y, mean, variance]) =>
          native.batchNormTraining(
            view(x!),
            view(gamma!),
            view(beta!),
            y!,
            mean!,
            variance!,
            c,
            attrs!.epsilon as number,
          ),
        );
      },
    },
    {
      kernelName: BATCH_NORM_TRAINING_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, dy, gamma, mean, variance, dMean, dVariance } = inputs as Record<
          string,
          tf.TensorInfo | undefined
        >;
        const c = channelsOf(x!);
        return produceAll(backend as BackendWasm, [x!.shape, [c], [c]], (view, [dx, dGamma, dBeta]) =>
          native.batchNormTrainingGrad(
            view(x!),
            view(dy!),
            view(gamma!),
            view(mean!),
            view(variance!),
            dMean ? view(dMean) : null,
            dVariance ? view(dVariance) : null,
            dx!,
            dGamma!,
            dBeta!,
            c,
            attrs!.epsilon as number,
          ),
        );
      },
    },
  ];
}

/*
 * Slice and PadV2: a ResNet's stem and strided layers pad explicitly (PyTorch's symmetric padding), and the
 * gradient of each pad is a slice; wasm walks both element by element, these copy whole channel rows.
 */
function sliceKernel(native: NativeKernels) {
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

function padKernel(native: NativeKernels) {
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

/** ReLU's gradient in one pass (see relu-grad.ts), where wasm needs Step, Cast and Multiply. */
export const RELU_GRAD = 'ProtoPoolReluGrad';

const replaced = new Map<string, KernelFunc>();

/** Replaces wasm's kernels with the addon's; the replaced ones stay as fallbacks and for `removeNativeKernels`. */
export function registerNativeKernels(native: NativeKernels, backendName = 'wasm'): void {
  removeNativeKernels(backendName);
  const impl: Record<
    (typeof NATIVE_KERNELS)[number],
    (args: KernelArgs, fallback: KernelFunc) => tf.TensorInfo | tf.TensorInfo[]
  > = {
    Conv2D: convKernel(native, false),
    FusedConv2D: convKernel(native, true),
    Conv2DBackpropInput: backpropInput(native),
    Conv2DBackpropFilter: backpropFilter(native),
    BatchMatMul: matMulKernel(native),
    _FusedMatMul: matMulKernel(native),
    MaxPoolGrad: maxPoolGradKernel(native),
    Slice: sliceKernel(native),
    PadV2: padKernel(native),
  };
  for (const kernelName of NATIVE_KERNELS) {
    const previous = tf.getKernel(kernelName, backendName);
    if (!previous) throw new Error(`no ${kernelName} kernel on ${backendName} to replace`);
    replaced.set(`${kernelName}/${backendName}`, previous.kernelFunc);
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({
      kernelName,
      backendName,
      kernelFunc: (args) => impl[kernelName](args, previous.kernelFunc),
    });
  }
  for (const kernel of batchNormKernels(native)) tf.registerKernel({ ...kernel, backendName });
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { dy, y } = inputs as Record<string, tf.TensorInfo>;
      return produce(backend as BackendWasm, y!.shape, (view, dx) =>
        native.reluGrad(view(dy!), view(y!), dx),
      );
    },
  });
}

/** Puts back the kernels `registerNativeKernels` replaced (benchmarks and the numeric tests compare both). */
export function removeNativeKernels(backendName = 'wasm'): void {
  for (const kernelName of NATIVE_KERNELS) {
    const key = `${kernelName}/${backendName}`;
    const previous = replaced.get(key);
    if (!previous) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: previous });
    replaced.delete(key);
  }
  for (const kernelName of [BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD, RELU_GRAD]) {
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  }
}
