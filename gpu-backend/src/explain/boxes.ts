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

/** Resamples one axis of a row-major grid: half-pixel centres, borders replicated (OpenCV semantics). */
function resizeAxis(src: Float64Array, rows: number, cols: number, outCols: number): Float64Array {
  const out = new Float64Array(rows * outCols);
  const scale = cols / outCols;
  for (let x = 0; x < outCols; x++) {
    const s = (x + 0.5) * scale - 0.5;
    const i = Math.floor(s);
    const wts = cubicWeights(s - i);
    for (let r = 0; r < rows; r++) {
      let v = 0;
      for (let k = 0; k < 4; k++) {
        const c = Math.min(cols - 1, Math.max(0, i - 1 + k));
        v += wts[k]! * src[r * cols + c]!;
      }
      out[r * outCols + x] = v;
    }
  }
  return out;
}

function transpose(src: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/** Bicubic upsampling of an h×w map to outH×outW (row-major in and out). */
export function upsampleBicubic(
  map: ArrayLike<number>,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float64Array {
  const wide = resizeAxis(Float64Array.from(map), h, w, outW); // h × outW
  const tall = resizeAxis(transpose(wide, h, outW), outW, h, outH); // outW × outH
  return transpose(tall, outW, outH);
}

/** numpy.percentile with linear interpolation. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const sorted = Float64Array.from(values).sort();
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (rank - lo) * (sorted[hi]! - sorted[lo]!);
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
