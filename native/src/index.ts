// Loads the oneDNN addon if it was built, and otherwise says why not (the engine logs the reason).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; buffers are TF.js float32 data (NHWC activations, HWIO filters). */
export interface NativeKernels {
  /**
   * y = relu?(conv(x, filter) + bias?); geometry is `convGeometry(...)`. `filterToken` > 0 promises the filter's
   * values never change under that token: its copy in oneDNN's layout is then kept and reused.
   */
  conv2d(
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    geometry: Int32Array,
    relu: boolean,
    filterToken?: number,
  ): void;
  conv2dBackpropInput(
    dy: Float32Array,
    filter: Float32Array,
    dx: Float32Array,
    geometry: Int32Array,
    filterToken?: number,
  ): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geometry: Int32Array): void;
  /** How conv2dBackpropFilter handles a geometry: one gemm per filter tap, or oneDNN's convolution. */
  conv2dBackpropFilterMethod(geometry: Int32Array): 'taps' | 'onednn';
  /** c[b] = relu?(op(a[b])·op(b[b]) + bias?); geometry is [batchA, batchB, m, k, n, transposeA, transposeB]. */
  matMul(
    a: Float32Array,
    b: Float32Array,
    bias: Float32Array | null,
    c: Float32Array,
    geometry: Int32Array,
    relu: boolean,
  ): void;
  /** dx of maxPool(x); geometry is [n, h, w, c, kh, kw, oh, ow, sh, sw, top, left]; first maximum wins ties. */
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, geometry: Int32Array): void;
  /** Training-mode batch norm over all axes but the last: writes y and the batch's mean and (biased) variance. */
  batchNormTraining(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    channels: number,
    epsilon: number,
  ): void;
  /** Its gradient: dx, dγ, dβ from dy (and the gradients of the batch statistics, when they have any). */
  batchNormTrainingGrad(
    x: Float32Array,
    dy: Float32Array,
    gamma: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    dMean: Float32Array | null,
    dVariance: Float32Array | null,
    dx: Float32Array,
    dGamma: Float32Array,
    dBeta: Float32Array,
    channels: number,
    epsilon: number,
  ): void;
  /** Inference-mode batch norm over the last axis with the given (moving) statistics. */
  batchNormInference(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    offset: Float32Array | null,
    scale: Float32Array | null,
    y: Float32Array,
    channels: number,
    epsilon: number,
  ): void;
  /**
   * One Adam step with L2 decay; constants are float32 [β₁, 1−β₁, β₂, 1−β₂, 1−β₁ᵗ, 1−β₂ᵗ, ε, −lr, decay].
   * Writes the new weights and moments.
   */
  adam(
    w: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    wOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    constants: Float32Array,
  ): void;
  /** dx = dy where y (relu's output) > 0, else 0. */
  reluGrad(dy: Float32Array, y: Float32Array, dx: Float32Array): void;
  /** A box of x (4-byte elements, rank ≤ 4) copied out. */
  slice(
    x: Float32Array | Int32Array,
    xShape: Int32Array,
    begin: Int32Array,
    size: Int32Array,
    out: Float32Array | Int32Array,
  ): void;
  /** x placed at `before` in an outShape filled with `value` (float32, rank ≤ 4). */
  pad(
    x: Float32Array,
    xShape: Int32Array,
    before: Int32Array,
    outShape: Int32Array,
    value: number,
    out: Float32Array,
  ): void;
  setThreads(n: number): void;
  info(): {
    onednn: string;
    threads: number;
    isa: string;
    cachedPrimitives: number;
    filterCopyBytes: number;
    scratchpadBytes: number;
    gatherBytes: number;
    /** Filters kept in oneDNN's layout for tokens (conv2d's `filterToken`). */
    keptFilterBytes: number;
  };
}

export type NativeLoad = { ok: true; kernels: NativeKernels } | { ok: false; reason: string };

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The addon, or why it is unavailable (not built, built without oneDNN, or failing to load). */
export function loadNativeKernels(root = packageRoot): NativeLoad {
  const addon = join(root, 'build', 'Release', 'protopool_native.node');
  if (!existsSync(addon)) {
    const note = join(root, 'build', 'unavailable.txt');
    const why = existsSync(note) ? readFileSync(note, 'utf8').trim() : 'the addon was never built';
    return { ok: false, reason: why };
  }
  try {
    return { ok: true, kernels: createRequire(import.meta.url)(addon) as NativeKernels };
  } catch (err) {
    // e.g. libdnnl.so.2 removed after the build: dlopen names the missing library.
    return { ok: false, reason: `the addon failed to load: ${(err as Error).message.split('\n')[0]}` };
  }
}
