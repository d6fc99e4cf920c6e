// Activation maps to input pixels: bicubic upsampling (as cv2.INTER_CUBIC) and ProtoPNet's 95th-percentile box.
import type { Box } from '@protopool/shared';

const A = -0.75; // OpenCV's bicubic coefficient

function cubicWeights(t: number): [number, number, number, number] {
  const w = (x: number) => {
    const ax = Math.abs(x);
    if (ax <= 1) return (A + 2) * ax ** 3 - (A + 3) * ax ** 2 + 1;
    if (ax < 2) return A * ax ** 3 - 5 * A * ax ** 2 + 8 * A * ax - 4 * A;
    return 0;
  };
  return [w(t + 1), w(t), w(1 - t), w(2 - t)];
}

/** Per output index along one axis: the 4 source indices (borders replicated) and their weights. */
function taps(inSize: number, outSize: number): { index: Int32Array; weight: Float64Array } {
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const s = (o + 0.5) * scale - 0.5; // half-pixel centres (OpenCV semantics)
    const i = Math.floor(s);
    const w = cubicWeights(s - i);
    for (let k = 0; k < 4; k++) {
      index[o * 4 + k] = Math.min(inSize - 1, Math.max(0, i - 1 + k));
      weight[o * 4 + k] = w[k]!;
    }
  }
  return { index, weight };
}

/** Bicubic upsampling of an h×w map to outH×outW (row-major in and out): rows first, then columns. */
export function upsampleBicubic(
  map: ArrayLike<number>,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float64Array {
  const src = Float64Array.from(map);
  const { index: ai, weight: aw } = taps(w, outW);
  const wide = new Float64Array(h * outW);
  for (let r = 0; r < h; r++) {
    const row = r * w;
    for (let x = 0; x < outW; x++) {
      const t = x * 4;
      wide[r * outW + x] =
        aw[t]! * src[row + ai[t]!]! +
        aw[t + 1]! * src[row + ai[t + 1]!]! +
        aw[t + 2]! * src[row + ai[t + 2]!]! +
        aw[t + 3]! * src[row + ai[t + 3]!]!;
    }
  }
  // Columns: each output row mixes four whole rows of `wide`, read in order.
  const { index: di, weight: dw } = taps(h, outH);
  const out = new Float64Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const t = y * 4;
    const [r0, r1, r2, r3] = [di[t]! * outW, di[t + 1]! * outW, di[t + 2]! * outW, di[t + 3]! * outW];
    const [w0, w1, w2, w3] = [dw[t]!, dw[t + 1]!, dw[t + 2]!, dw[t + 3]!];
    const o = y * outW;
    for (let x = 0; x < outW; x++) {
      out[o + x] = w0 * wide[r0 + x]! + w1 * wide[r1 + x]! + w2 * wide[r2 + x]! + w3 * wide[r3 + x]!;
    }
  }
  return out;
}

/** The k-th smallest of `a` (0-based), moving it to a[k] and smaller ones before it (Hoare's selection). */
function select(a: Float64Array, k: number, from = 0, to = a.length - 1): number {
  let lo = from;
  let hi = to;
  while (hi > lo) {
    // Median of three as the pivot: sorted and constant maps stay linear.
    const mid = (lo + hi) >> 1;
    const pivot = Math.max(Math.min(a[lo]!, a[mid]!), Math.min(Math.max(a[lo]!, a[mid]!), a[hi]!));
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}

/**
 * numpy.percentile with linear interpolation, by selection rather than a sort: O(n) for the 50,176 values
 * of a 224 px map, which every slot of every explanation needs.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  const a = Float64Array.from(values);
  const rank = (p / 100) * (a.length - 1);
  const lo = Math.floor(rank);
  const low = select(a, lo);
  if (lo + 1 >= a.length || rank === lo) return low;
  // After selecting lo, everything above index lo is ≥ a[lo]: the next order statistic is their minimum.
  let high = Number.POSITIVE_INFINITY;
  for (let i = lo + 1; i < a.length; i++) if (a[i]! < high) high = a[i]!;
  return low + (rank - lo) * (high - low);
}

/** The smallest box holding every pixel at or above the map's `p`-th percentile (ProtoPNet: p = 95). */
export function highActivationBox(map: ArrayLike<number>, h: number, w: number, p = 95): Box {
  const threshold = percentile(map, p);
  let y0 = h;
  let y1 = -1;
  let x0 = w;
  let x1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (map[y * w + x]! >= threshold) {
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
      }
    }
  }
  return { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

/** Box in input pixels for a feature-grid activation map. */
export function activationBox(
  map: ArrayLike<number>,
  gridH: number,
  gridW: number,
  inputH: number,
  inputW: number,
): Box {
  return highActivationBox(upsampleBicubic(map, gridH, gridW, inputH, inputW), inputH, inputW);
}
