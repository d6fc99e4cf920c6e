// Faster wasm Tile, Sum, Mean, flagged BatchMatMul, MaxPoolGrad, FusedBatchNorm, Square, Identity, comparisons.
import * as tf from '@tensorflow/tfjs';
import { maxPoolGrad } from './maxpool-grad';

/*
 * Measured on wasm SIMD, one thread (32×16×16×64 float32): Tile to that shape 34 ms, the same result as
 * fill + broadcasting mul 2.7 ms; Sum over the three leading axes 2.5 ms, average pooling + a tiny
 * matMul 0.2 ms. wasm's Tile, Reverse and Gather index element by element; its Sum transposes first unless
 * the reduced axes are innermost. Batch-norm gradients hit both on every layer.
 */

export const FAST_KERNELS = [
  'Tile',
  'Sum',
  'Mean',
  'BatchMatMul',
  'MaxPoolGrad',
  'FusedBatchNorm',
  'Square',
  'Equal',
  'NotEqual',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
] as const;

/** Comparisons: wasm broadcasts them element by element (see `registerFastKernels`). */
const COMPARISONS = ['Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual'] as const;

type KernelFunc = tf.KernelConfig['kernelFunc'];
const originals = new Map<string, KernelFunc>();

function original(kernelName: string, backendName: string): KernelFunc {
  const key = `${kernelName}/${backendName}`;
  let fn = originals.get(key);
  if (!fn) {
    const k = tf.getKernel(kernelName, backendName);
    if (!k) throw new Error(`no ${kernelName} kernel for ${backendName} to wrap`);
    fn = k.kernelFunc;
    originals.set(key, fn);
  }
  return fn;
}

type KernelArgs = Parameters<KernelFunc>[0];

function replace(
  kernelName: string,
  backendName: string,
  fast: (args: KernelArgs, fallback: KernelFunc) => ReturnType<KernelFunc>,
): void {
  const fallback = original(kernelName, backendName);
  tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc: (args) => fast(args, fallback) });
}

/** Puts the stock kernels back (benchmark baselines). */
export function restoreStockKernels(backendName: string): void {
  for (const kernelName of FAST_KERNELS) {
    const fn = originals.get(`${kernelName}/${backendName}`);
    if (!fn) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: fn });
  }
}

/** XNNPACK's broadcasting binary ops take at most this many dimensions. */
const MAX_BROADCAST_RANK = 6;

/**
 * Tile as ones(reps interleaved with 1s) × x(1s interleaved with dims): every output is exactly 1·x.
 * Returns undefined when the interleaved shape, with unit dims dropped and runs merged, is still too
 * deep for XNNPACK (the caller then uses the stock kernel).
 */
export function tileByBroadcast(x: tf.Tensor, reps: number[]): tf.Tensor | undefined {
  const onesShape: number[] = [];
  const xShape: number[] = [];
  const push = (o: number, d: number) => {
    if (o === 1 && d === 1) return;
    const last = onesShape.length - 1;
    const sameKind = last >= 0 && (o === 1) === (onesShape[last] === 1);
    if (sameKind) {
      onesShape[last]! *= o;
      xShape[last]! *= d;
    } else {
      onesShape.push(o);
      xShape.push(d);
    }
  };
  x.shape.forEach((d, i) => {
    push(reps[i]!, 1);
    push(1, d);
  });
  if (onesShape.length > MAX_BROADCAST_RANK) return undefined;
  const out = x.shape.map((d, i) => d * reps[i]!);
  if (onesShape.length === 0) return tf.reshape(x, out);
  return tf.tidy(() => tf.reshape(tf.mul(tf.ones(onesShape), tf.reshape(x, xShape)), out));
}

/** Axes as a sorted, de-duplicated, non-negative list. */
function normAxes(axis: number | number[], rank: number): number[] {
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
  return [...new Set(list)].sort((a, b) => a - b);
}

/**
 * Σ (or mean) over leading axes as XNNPACK average pooling over the last two reduced axes, then a
 * matMul with ones over the rest; over trailing axes as x · ones. Undefined when the axes are neither
 * (the caller then uses the stock kernel). Why not ones · x for leading axes: XNNPACK repacks a
 * matMul's right operand on every call (~8 ns an element, 10 ms for a 32×32×32×64 activation),
 * while pooling reads it once (0.7 ms).
 */
export function reduceByPool(
  x: tf.Tensor,
  axis: number | number[],
  keepDims: boolean,
  mean = false,
): tf.Tensor | undefined {
  const rank = x.rank;
  const axes = normAxes(axis, rank);
  if (axes.length === 0 || x.size === 0) return undefined;
  const k = axes.length;
  const leading = axes.every((a, i) => a === i);
  const trailing = axes.every((a, i) => a === rank - k + i);
  if (!leading && !trailing) return undefined;
  const outShape = keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
  const m = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const rest = x.size / m;
  return tf.tidy(() => {
    let r: tf.Tensor;
    if (leading) {
      const [a, b] = k >= 2 ? [x.shape[k - 2]!, x.shape[k - 1]!] : [x.shape[0]!, 1];
      const outer = m / (a * b);
      const pooled = tf.avgPool(tf.reshape(x, [outer, a, b, rest]) as tf.Tensor4D, [a, b], 1, 'valid');
      // Pooling already divided by a·b: scale the outer sum by what is left.
      const scale = mean ? 1 / outer : a * b;
      r = tf.matMul(tf.fill([1, outer], scale), tf.reshape(pooled, [outer, rest]));
    } else {
      r = tf.matMul(tf.reshape(x, [rest, m]), tf.fill([m, 1], mean ? 1 / m : 1));
    }
    return tf.reshape(r, outShape);
  });
}

/** The last two axes swapped (a matrix transpose per batch entry). */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  perm.push(...perm.splice(-2).reverse());
  return tf.transpose(x, perm);
}

/** Registers the faster Tile, Sum, Mean, BatchMatMul, MaxPoolGrad, FusedBatchNorm, Square and comparisons for `backendName` (float32 only; the rest unchanged). */
export function registerFastKernels(backendName: string): void {
  replace('Tile', backendName, (args, fallback) => {
    const x = args.inputs.x as tf.Tensor;
    const { reps } = args.attrs as unknown as { reps: number[] };
    if (x.dtype !== 'float32' || x.size === 0) return fallback(args);
    return (tileByBroadcast(x, reps) ?? fallback(args)) as tf.TensorInfo;
  });
  replace('Sum', backendName, (args, fallback) => {
    const x = args.inputs.x as tf.Tensor;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    // Tiny reductions gain nothing from the matMul detour.
    if (x.dtype !== 'float32' || x.size < 4096) return fallback(args);
    return (reduceByPool(x, axis, keepDims) ?? fallback(args)) as tf.TensorInfo;
  });
  // Batch-norm statistics: Mean over the leading axes transposes first on wasm (29 ms at 32×32×32×64).
  replace('Mean', backendName, (args, fallback) => {
    const x = args.inputs.x as tf.Tensor;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    if (x.dtype !== 'float32' || x.size < 4096) return fallback(args);
    return (reduceByPool(x, axis, keepDims, true) ?? fallback(args)) as tf.TensorInfo;
  });
  // With a transpose flag wasm's BatchMatMul leaves XNNPACK (~10x slower); an explicit Transpose is
  // memcpy-like. Hits every dense layer's gradient (dy·wᵀ, xᵀ·dy).
  replace('BatchMatMul', backendName, (args, fallback) => {
    const { a, b } = args.inputs as { a: tf.Tensor; b: tf.Tensor };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
    const at = transposeA ? swapLast(a) : a;
    const bt = transposeB ? swapLast(b) : b;
    const attrs = { ...args.attrs, transposeA: false, transposeB: false };
    const out = fallback({ ...args, inputs: { a: at, b: bt }, attrs }) as tf.TensorInfo;
    if (at !== a) at.dispose();
    if (bt !== b) bt.dispose();
    return out;
  });
  // wasm's FusedBatchNorm: 12 ms at 32×32×32×64; three broadcasting XNNPACK passes: 6 ms. Kept as
  // (x − mean)·s + offset rather than x·s + (offset − mean·s), which cancels when |mean| ≫ std.
  replace('FusedBatchNorm', backendName, (args, fallback) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, tf.Tensor | undefined>;
    const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
    const c = x!.shape[x!.rank - 1];
    const perChannel = [mean, variance, offset, scale].every((t) => !t || (t.rank === 1 && t.shape[0] === c));
    if (x!.dtype !== 'float32' || !perChannel) return fallback(args);
    return tf.tidy(() => {
      let s = tf.rsqrt(tf.add(variance!, varianceEpsilon));
      if (scale) s = tf.mul(s, scale);
      const y = tf.mul(tf.sub(x!, mean!), s);
      return offset ? tf.add(y, offset) : y;
    }) as unknown as tf.TensorInfo;
  });
  // wasm's Square: 5 ms at 32×32×32×64; XNNPACK's x·x: 2 ms (batch-norm variance, Adam's v).
  replace('Square', backendName, (args, fallback) => {
    const x = args.inputs.x as tf.Tensor;
    if (x.dtype !== 'float32' || x.size < 4096) return fallback(args);
    return tf.mul(x, x) as unknown as tf.TensorInfo;
  });
  // wasm's Identity (every clone) copies the data; tensors are immutable (Variable.assign swaps the
  // data id), so sharing it with a reference count is what the cpu backend does too. ~600 a step.
  replace('Identity', backendName, (args, fallback) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return fallback(args);
    (args.backend as tf.KernelBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  // wasm compares with broadcasting one element at a time: 12.6 ms for 50×49×40 against 50×1×40 (the
  // gradient of the focal similarity's max over positions, every step), where XNNPACK's broadcasting add
  // takes 0.5 ms and a same-shape compare 0.6 ms. So broadcast first, as x + 0: exact (−0 + 0 = +0, which
  // compares as −0 does; NaN and ±∞ stay), then compare inputs of one shape.
  for (const kernelName of COMPARISONS) {
    replace(kernelName, backendName, (args, fallback) => {
      const { a, b } = args.inputs as { a: tf.Tensor; b: tf.Tensor };
      if (a.dtype !== 'float32' || b.dtype !== 'float32' || tf.util.arraysEqual(a.shape, b.shape)) {
        return fallback(args);
      }
      const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (shape.length > MAX_BROADCAST_RANK) return fallback(args);
      const widen = (x: tf.Tensor) => (tf.util.arraysEqual(x.shape, shape) ? x : tf.add(x, tf.zeros(shape)));
      const [wa, wb] = tf.tidy(() => [widen(a), widen(b)]);
      try {
        return fallback({ ...args, inputs: { a: wa!, b: wb! } });
      } finally {
        if (wa !== a) wa!.dispose();
        if (wb !== b) wb!.dispose();
      }
    });
  }
  replace('MaxPoolGrad', backendName, (args, fallback) => {
    const { dy, input, output } = args.inputs as { dy: tf.Tensor4D; input: tf.Tensor4D; output: tf.Tensor4D };
    const a = args.attrs as unknown as {
      filterSize: number | [number, number];
      strides: number | [number, number];
      pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
    };
    // Every window, although wasm's own is faster on overlapping ones: it drops gradient at the
    // bottom/right edge under asymmetric 'same' padding (ResNet's stem pool; see maxpool-grad.ts).
    if (dy.dtype !== 'float32' || input.dtype !== 'float32') return fallback(args);
    return maxPoolGrad(dy, input, output, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
  });
}
