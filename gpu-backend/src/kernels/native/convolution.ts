// Convolutions in oneDNN: Conv2D, FusedConv2D (bias, ReLU) and both gradients, NHWC with HWIO filters.
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

/** [n, h, w, c, kh, kw, co, oh, ow, sh, sw, top, left, bottom, right, dh, dw], as kernels.cc reads it. */
export function convGeometry(info: tf.backend_util.Conv2DInfo): Int32Array {
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

/**
 * A filter's token for the addon's kept copies (convolution.cc `filterFor`): 0 the first time a tensor's data
 * is a filter in this direction, then one token for good. TF.js never changes the values under a dataId (a
 * variable's assign gives it a new one), so a filter used twice is a frozen layer's or a served model's, and
 * its reordered copy can be kept; a trained layer's new weights each step are used once and are not kept.
 */
// One counter for the process, whatever registers the kernels how often: the addon's kept copies outlive a
// registration, and a token must never name two tensors.
let nextToken = 1;

export class FilterTokens {
  // Per direction: in joint training the forward pass and the input gradient each use a step's new weights
  // once, and neither should keep them.
  private readonly seen = {
    forward: new WeakMap<object, number>(),
    backwardData: new WeakMap<object, number>(),
  };

  of(filter: tf.TensorInfo, direction: 'forward' | 'backwardData'): number {
    const seen = this.seen[direction];
    const token = seen.get(filter.dataId);
    if (token === undefined) {
      seen.set(filter.dataId, 0);
      return 0;
    }
    if (token > 0) return token;
    const fresh = nextToken++;
    seen.set(filter.dataId, fresh);
    return fresh;
  }
}
export function convKernel(native: NativeKernels, fused: boolean, tokens: FilterTokens): Replacement {
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
        tokens.of(filter!, 'forward'),
      ),
    );
  };
}

export function backpropInput(native: NativeKernels, tokens: FilterTokens): Replacement {
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
      native.conv2dBackpropInput(
        view(dy!),
        view(filter!),
        dx,
        convGeometry(info),
        tokens.of(filter!, 'backwardData'),
      ),
    );
  };
}

export function backpropFilter(native: NativeKernels): Replacement {
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
