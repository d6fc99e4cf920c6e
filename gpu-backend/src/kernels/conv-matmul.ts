// Conv gradients for strided and small maps: polyphase or matMul + scatter input grads, im2col filter grads.
import * as tf from '@tensorflow/tfjs';

/*
 * Why these shapes (wasm SIMD, one thread): BatchMatMul runs XNNPACK only without transpose flags
 * (with either flag it is ~10x slower), and it is fast only when the reduced dimension is large; 2-4-D
 * Slice, Pad and Transpose are memcpy-like, but 5-/6-D Slice and Transpose, StridedSlice, Reverse,
 * Gather and DepthToSpace walk element by element (a 5-D slice of 0.5M floats: 156 ms vs 2.4 ms
 * 4-D). So everything here stays at rank ≤ 4 and every matMul is untransposed. XNNPACK also repacks
 * a matMul's right operand and a conv's filter on every call (~8 ns an element; weights change every
 * step), so the big operand goes on the left where it can.
 */

export type Pair = [number, number];

/** Pads (positive) or crops (negative) the two middle axes of a rank-4 tensor. */
export function padOrCrop(
  x: tf.Tensor4D,
  top: number,
  bottom: number,
  left: number,
  right: number,
): tf.Tensor4D {
  let y = x;
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    y = tf.pad(y, [
      [0, 0],
      [Math.max(top, 0), Math.max(bottom, 0)],
      [Math.max(left, 0), Math.max(right, 0)],
      [0, 0],
    ]);
  }
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [b, h, w, c] = y.shape;
    const t = Math.max(-top, 0);
    const l = Math.max(-left, 0);
    y = tf.slice(y, [0, t, l, 0], [b, h - t - Math.max(-bottom, 0), w - l - Math.max(-right, 0), c]);
  }
  return y;
}

/**
 * Interleaves phase grids: phases[py][px] is [N, U, V, C] and lands on rows u·sy + py, columns
 * v·sx + px of the [N, U·sy, V·sx, C] result. One concat and two ≤4-D transposes.
 */
export function interleavePhases(phases: tf.Tensor4D[][]): tf.Tensor4D {
  const sy = phases.length;
  const sx = phases[0]!.length;
  const [n, u, v, c] = phases[0]![0]!.shape;
  if (sy === 1 && sx === 1) return phases[0]![0]!;
  const flat = phases.flat().map((p) => tf.reshape(p, [1, n * u * v * c]));
  let t: tf.Tensor = tf.reshape(tf.concat(flat, 0), [sy, sx, n * u * v, c]);
  if (sx > 1) t = tf.transpose(t, [0, 2, 1, 3]); // [sy, n·u·v, sx, c]
  t = tf.reshape(t, [sy, n * u, v * sx * c]);
  if (sy > 1) t = tf.transpose(t, [1, 0, 2]); // [n·u, sy, v·sx·c]
  return tf.reshape(t, [n, u * sy, v * sx, c]);
}

/**
 * dL/dx as Z = W[kh·kw·ci, co] · dyᵀ[co, oh·ow·b] (reduced over co: fast), then col2im as a second
 * matMul with a 0/1 scatter matrix S[(k, o), i] that adds tap k at output cell o into input cell
 * o·s + k − pad. Uses the filter as stored — no flip or transpose, which on the 2×2 and 4×4 maps
 * cost more than the product. Only for small maps (S has kh·kw·oh·ow × h·w entries).
 */
export function inputGradByMatMul(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  [sh, sw]: Pair,
  top: number,
  left: number,
): tf.Tensor4D {
  const [b, oh, ow, co] = dy.shape;
  const [kh, kw, ci] = filter.shape;
  const [, h, w] = xShape;
  const cells = oh * ow;
  const dyT = tf.reshape(tf.transpose(dy, [3, 1, 2, 0]), [co, cells * b]);
  const z = tf.reshape(tf.matMul(tf.reshape(filter, [kh * kw * ci, co]), dyT), [kh * kw, ci, cells, b]);
  // [ci·b, (k, o)]: the scatter's reduced axis last, so the big operand is not repacked by XNNPACK.
  const zt = tf.reshape(tf.transpose(z, [1, 3, 0, 2]), [ci * b, kh * kw * cells]);
  const targets: number[] = [];
  for (let ty = 0; ty < kh; ty++) {
    for (let tx = 0; tx < kw; tx++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          const iy = oy * sh + ty - top;
          const ix = ox * sw + tx - left;
          targets.push(iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : -1);
        }
      }
    }
  }
  // -1: a zero row. tf.oneHot refuses depth 1 (a 1×1 input map), so that case takes one column of two.
  const depth = Math.max(h * w, 2);
  const hot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), depth), 'float32');
  const scatter = depth === h * w ? hot : tf.slice(hot, [0, 0], [-1, h * w]);
  const dxT = tf.reshape(tf.matMul(zt, scatter), [ci, b, h, w]);
  return tf.transpose(dxT, [1, 2, 3, 0]) as tf.Tensor4D;
}

/** Sub-filter rows/cols taps[j] = s·j + r, flipped, as a concat of 4-D slices (wasm's Reverse is slow). */
function subFilter(wt: tf.Tensor4D, rowTaps: number[], colTaps: number[]): tf.Tensor4D {
  const [, kw, a, c] = wt.shape;
  const rows = rowTaps.map((t) => tf.slice(wt, [t, 0, 0, 0], [1, kw, a, c]));
  let f = rows.length === 1 ? rows[0]! : tf.concat(rows, 0);
  const cols = colTaps.map((t) => tf.slice(f, [0, t, 0, 0], [f.shape[0], 1, a, c]));
  f = cols.length === 1 ? cols[0]! : tf.concat(cols, 1);
  return f;
}

/**
 * dL/dx for stride s as s² stride-1 convolutions, one per output phase (polyphase): phase (py, px)
 * only meets the taps k ≡ py + top (mod s), so no zeros are multiplied — a zero-dilated output gradient
 * costs s² times more. Phase results are interleaved.
 */
export function inputGradByPhases(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  [sh, sw]: Pair,
  top: number,
  left: number,
): tf.Tensor4D {
  const [b, oh, ow] = dy.shape;
  const [kh, kw, ci] = filter.shape;
  const [, h, w] = xShape;
  const wt = tf.transpose(filter, [0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, co, ci]
  const uMax = Math.ceil(h / sh);
  const vMax = Math.ceil(w / sw);
  // Per axis and phase p: remainder r, offset q, flipped taps, and how many rows the phase has.
  const axis = (p: number, s: number, off: number, k: number, size: number) => {
    const r = (p + off) % s;
    const q = Math.floor((p + off) / s);
    const taps: number[] = [];
    for (let t = r; t < k; t += s) taps.unshift(t);
    return { q, taps, n: Math.ceil((size - p) / s) };
  };
  const phases: tf.Tensor4D[][] = [];
  for (let py = 0; py < sh; py++) {
    const ay = axis(py, sh, top, kh, h);
    const row: tf.Tensor4D[] = [];
    for (let px = 0; px < sw; px++) {
      const ax = axis(px, sw, left, kw, w);
      let out: tf.Tensor4D;
      if (ay.taps.length === 0 || ax.taps.length === 0 || ay.n <= 0 || ax.n <= 0) {
        out = tf.zeros([b, uMax, vMax, ci]);
      } else {
        const jy = ay.taps.length;
        const jx = ax.taps.length;
        // dx_p[u] = Σ_j' dy[u + q − J + 1 + j'] · f[j']: a valid conv of dy padded by J − 1 − q.
        const pt = jy - 1 - ay.q;
        const pl = jx - 1 - ax.q;
        const src = padOrCrop(dy, pt, ay.n + jy - 1 - pt - oh, pl, ax.n + jx - 1 - pl - ow);
        const conv = tf.conv2d(src, subFilter(wt, ay.taps, ax.taps), 1, 'valid');
        out = padOrCrop(conv, 0, uMax - ay.n, 0, vMax - ax.n);
      }
      row.push(out);
    }
    phases.push(row);
  }
  return padOrCrop(interleavePhases(phases), 0, h - uMax * sh, 0, w - vMax * sw);
}

/**
 * dL/dfilter as im2col: the kh·kw shifted (and, for stride s, phase-sampled) windows of xᵀ, concatenated
 * into Pᵀ[kh·kw·ci, M], times dy[M, co]. Used for 1×1 filters (one window: 2 ms where a strided slice and
 * a flagged matMul took 25); for 3×3 the nine window copies cost more than the conv formulation.
 */
export function filterGradByMatMul(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  [sh, sw]: Pair,
  top: number,
  left: number,
): tf.Tensor4D {
  const [kh, kw, ci, co] = filterShape;
  const [b, oh, ow] = dy.shape;
  // Rows the forward pass read, padded up to whole stride periods.
  const hq = oh + Math.ceil(kh / sh) - 1;
  const wq = ow + Math.ceil(kw / sw) - 1;
  const xp = padOrCrop(x, top, hq * sh - top - x.shape[1], left, wq * sw - left - x.shape[2]);
  // Phase grids in [ci, b, hq, wq] layout, made on demand.
  const grids = new Map<number, tf.Tensor4D>();
  const grid = (ry: number, rx: number) => {
    const key = ry * sw + rx;
    let g = grids.get(key);
    if (!g) {
      let p = xp;
      if (sh > 1 || sw > 1) {
        const r = tf.reshape(xp, [b * hq, sh, wq, sw * ci]);
        p = tf.reshape(tf.slice(r, [0, ry, 0, rx * ci], [b * hq, 1, wq, ci]), [b, hq, wq, ci]);
      }
      g = tf.transpose(p, [3, 0, 1, 2]) as tf.Tensor4D;
      grids.set(key, g);
    }
    return g;
  };
  const m = b * oh * ow;
  const cols: tf.Tensor[] = [];
  for (let ty = 0; ty < kh; ty++) {
    for (let tx = 0; tx < kw; tx++) {
      const g = grid(ty % sh, tx % sw);
      const win = tf.slice(g, [0, 0, Math.floor(ty / sh), Math.floor(tx / sw)], [ci, b, oh, ow]);
      cols.push(tf.reshape(win, [1, ci * m]));
    }
  }
  const pT = tf.reshape(cols.length === 1 ? cols[0]! : tf.concat(cols, 0), [kh * kw * ci, m]);
  return tf.reshape(tf.matMul(pT, tf.reshape(dy, [m, co])), filterShape);
}
