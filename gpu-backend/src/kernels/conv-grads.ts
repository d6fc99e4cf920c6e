// Convolution gradients expressed as forward convolutions and matMuls: fast on engines (wasm) whose
// own backprop kernels are missing (Conv2DBackpropFilter) or slow (Conv2DBackpropInput, ~10x a conv).
// Input gradient by shape: 1×1 → matMul; ≤ 16 output cells → matMul + scatter; stride > 1 → polyphase
// convs; else one conv with the flipped filter. Filter gradient: 1×1 → matMul; else one conv.
import * as tf from '@tensorflow/tfjs';
import { filterGradByMatMul, inputGradByMatMul, inputGradByPhases, padOrCrop } from './conv-matmul';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Pair = [number, number];

export function pair(v: number | Pair): Pair {
  return typeof v === 'number' ? [v, v] : v;
}

/** How a convolution strides and pads: the attributes its two gradient kernels share with it. */
export type ConvGeometry = Pick<tf.Conv2DBackpropInputAttrs, 'strides' | 'pad' | 'dimRoundingMode'>;

export function padInfo(xShape: number[], filterShape: number[], g: ConvGeometry) {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    g.strides,
    1,
    g.pad as Pad,
    g.dimRoundingMode,
  );
  return { top: info.padInfo.top, left: info.padInfo.left, outH: info.outHeight, outW: info.outWidth };
}

/** Inserts (s−1) zeros between neighbouring cells: the transpose of striding. */
export function dilate(dy: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [b, h, w, c] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [b, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  const full = tf.reshape(spread, [b, h * sh, w * sw, c]);
  return tf.slice(full as tf.Tensor4D, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/**
 * reverse(filter, [0, 1]) as one matMul with the [kh·kw]² anti-diagonal permutation: wasm's Reverse
 * (and Gather) walk element by element, ~6x slower than this on a 3×3×256×256 filter. Exact, since each
 * output is 1·w plus zeros.
 */
export function flipSpatial(filter: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, ci, co] = filter.shape;
    const k = kh * kw;
    if (k === 1) return filter.clone();
    const perm = tf.reverse(tf.eye(k), [1]);
    return tf.reshape(tf.matMul(perm, tf.reshape(filter, [k, ci * co])), filter.shape);
  });
}

/**
 * dL/dx of `conv2d(x, filter, strides, pad)` (NHWC, dilation 1), as a stride-1 convolution of the
 * dilated, re-padded output gradient with the spatially flipped, in/out-swapped filter:
 * dx[i] = Σ_k dy_dilated[i + top − k] · w[k].
 */
export function conv2dInputGrad(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  g: ConvGeometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [sh, sw] = pair(g.strides);
    const [kh, kw] = filter.shape;
    const [, h, w] = xShape;
    const { top, left } = padInfo(xShape, filter.shape, g);
    if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && top === 0 && left === 0) {
      // 1×1: dy · wᵀ. The transpose is explicit: wasm's matMul with a transpose flag is ~10x slower.
      const [b, oh, ow, co] = dy.shape;
      const ci = filter.shape[2];
      const wT = tf.transpose(tf.reshape(filter, [ci, co]));
      return tf.reshape(tf.matMul(tf.reshape(dy, [b * oh * ow, co]), wT), [b, h, w, ci]);
    }
    // Output maps of ≤ 16 cells (ResNet's last two stages): flipping, transposing and repacking a
    // 3×3×512×512 filter costs more than the product, so use the filter as stored.
    if (dy.shape[1] * dy.shape[2] <= 16) return inputGradByMatMul(xShape, dy, filter, [sh, sw], top, left);
    if (sh > 1 || sw > 1) return inputGradByPhases(xShape, dy, filter, [sh, sw], top, left);
    const flipped = tf.transpose(flipSpatial(filter), [0, 1, 3, 2]) as tf.Tensor4D;
    return inputGradByFlippedConv(xShape, dy, flipped, [sh, sw], top, left);
  });
}

/**
 * The general case: one stride-1 convolution of the dilated, re-padded output gradient with `flipped`, the
 * filter flipped in space with its in/out axes swapped ([kh, kw, co, ci]).
 */
export function inputGradByFlippedConv(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  flipped: tf.Tensor4D,
  [sh, sw]: Pair,
  top: number,
  left: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = flipped.shape;
    const [, h, w] = xShape;
    const d = dilate(dy, sh, sw);
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padded = padOrCrop(
      d,
      padTop,
      h + kh - 1 - padTop - d.shape[1],
      padLeft,
      w + kw - 1 - padLeft - d.shape[2],
    );
    return tf.conv2d(padded, flipped, 1, 'valid');
  });
}

/**
 * dL/dfilter of `conv2d(x, filter, strides, pad)` (NHWC, dilation 1). Swapping the batch and channel
 * axes turns it into one forward convolution whose "filter" is the output gradient, dilated by the
 * stride: dW[k, ci, co] = Σ_{b,o} x[b, o·s + k − top, ci] · dy[b, o, co].
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  g: ConvGeometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [sh, sw] = pair(g.strides);
    const [kh, kw] = filterShape;
    const { top, left } = padInfo(x.shape, filterShape, g);
    if (kh === 1 && kw === 1) return filterGradByMatMul(x, dy, filterShape, [sh, sw], top, left);
    return filterGradByConv(x, dy, filterShape, [sh, sw], top, left);
  });
}

/** The general case: one forward convolution of x (batch and channels swapped) with dy as its filter. */
export function filterGradByConv(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  [kh, kw]: [number, number, number, number],
  [sh, sw]: Pair,
  top: number,
  left: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [, oh, ow] = dy.shape;
    // The input window the forward pass read: rows top-shifted, exactly (oh−1)·s + kh of them.
    const needH = (oh - 1) * sh + kh;
    const needW = (ow - 1) * sw + kw;
    const xp = padOrCrop(x, top, needH - top - x.shape[1], left, needW - left - x.shape[2]);
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [ci, H, W, b]
    const dyt = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [oh, ow, b, co]
    const g = tf.conv2d(xt, dyt, 1, 'valid', 'NHWC', [sh, sw]); // [ci, kh, kw, co]
    return tf.transpose(g, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}
