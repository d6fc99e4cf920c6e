// Max-pool gradient from whole-tensor ops: wasm's own loses gradient under asymmetric 'same' padding.
import * as tf from '@tensorflow/tfjs';
import { interleavePhases, padOrCrop } from './conv-matmul';

/**
 * dL/dx of maxPool(x) (NHWC). Each output cell's gradient goes to the first window position, in
 * row-major order, that holds the maximum — the cpu backend's rule, which matters after a ReLU where
 * ties are common. Taps are visited in that order with the gradient not yet handed out, each tap's
 * share is shifted onto its stride phase, and the phases are interleaved (the same layout as the
 * polyphase convolution gradient).
 *
 * Why not wasm's MaxPoolGrad: with 'same' padding that pads only bottom/right (ResNet's 3×3/2 stem
 * pool: 32→16) it loses gradient — Σdx ≠ Σdy (365.5 vs 367.1 on a seeded 4×12×12×5 case) — while the
 * cpu backend and this agree exactly. Speed: 2–3x wasm's on non-overlapping windows (the small CNN's
 * 2×2 pools: each tap is one phase, no slices or sums); ~1.3x slower on the 3×3/2 stem pool, where 14
 * slices and 9 comparisons (wasm Slice and Equal: ~5 ns an element) dominate.
 */
export function maxPoolGrad(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  y: tf.Tensor4D,
  filterSize: number | [number, number],
  strides: number | [number, number],
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
  roundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computePool2DInfo(x.shape, filterSize, strides, 1, pad, roundingMode);
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const [b, h, w, c] = x.shape;
    const [, oh, ow] = y.shape;
    // Padded input covering every window, in whole stride periods; padding never wins (−∞).
    const hq = oh + Math.ceil(kh / sh) - 1;
    const wq = ow + Math.ceil(kw / sw) - 1;
    const bottom = hq * sh - top - h;
    const right = wq * sw - left - w;
    let xp = x;
    if (top > 0 || left > 0 || bottom > 0 || right > 0) {
      const padding: [number, number][] = [
        [0, 0],
        [Math.max(top, 0), Math.max(bottom, 0)],
        [Math.max(left, 0), Math.max(right, 0)],
        [0, 0],
      ];
      xp = tf.pad(x, padding, Number.NEGATIVE_INFINITY);
    }
    xp = padOrCrop(xp, 0, Math.min(bottom, 0), 0, Math.min(right, 0));
    const phase = (ry: number, rx: number) =>
      sh === 1 && sw === 1
        ? xp
        : (tf.reshape(
            tf.slice(tf.reshape(xp, [b * hq, sh, wq, sw * c]), [0, ry, 0, rx * c], [b * hq, 1, wq, c]),
            [b, hq, wq, c],
          ) as tf.Tensor4D);
    const grids = new Map<number, tf.Tensor4D>();
    const parts: tf.Tensor4D[][][] = Array.from({ length: sh }, () => Array.from({ length: sw }, () => []));
    const jy = Math.ceil(kh / sh);
    const jx = Math.ceil(kw / sw);
    // The gradient not yet handed to a window position: each cell's dy goes to its first maximum only.
    let rest: tf.Tensor = dy;
    const zeros = tf.zerosLike(dy);
    for (let ty = 0; ty < kh; ty++) {
      for (let tx = 0; tx < kw; tx++) {
        const key = (ty % sh) * sw + (tx % sw);
        let g = grids.get(key);
        if (!g) {
          g = phase(ty % sh, tx % sw);
          grids.set(key, g);
        }
        const i = Math.floor(ty / sh);
        const j = Math.floor(tx / sw);
        const whole = i === 0 && j === 0 && hq === oh && wq === ow;
        const tap = whole ? g : tf.slice(g, [0, i, j, 0], [b, oh, ow, c]);
        const share = tf.where(tf.equal(tap, y), rest, zeros) as tf.Tensor4D;
        if (ty < kh - 1 || tx < kw - 1) rest = tf.sub(rest, share);
        parts[ty % sh]![tx % sw]!.push(padOrCrop(share, i, jy - 1 - i, j, jx - 1 - j));
      }
    }
    const phases = parts.map((row) =>
      row.map((p) => (p.length === 0 ? tf.zeros([b, hq, wq, c]) : p.length === 1 ? p[0]! : tf.addN(p))),
    ) as tf.Tensor4D[][];
    // Padded row r is input row r − top.
    return padOrCrop(interleavePhases(phases), -top, h + top - hq * sh, -left, w + left - wq * sw);
  });
}
