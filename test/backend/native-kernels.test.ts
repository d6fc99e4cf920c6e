// The oneDNN kernels (native/, registered on wasm) compute what TF.js's cpu backend computes.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import {
  NATIVE_KERNELS,
  registerNativeKernels,
  removeNativeKernels,
} from '../../gpu-backend/src/kernels/native';
import { convGeometry, FilterTokens } from '../../gpu-backend/src/kernels/native/convolution';
import { replacedBy } from '../../gpu-backend/src/kernels/replacement';
import { GroupedAdam } from '../../gpu-backend/src/train/optimizer';
import { onCpuAnd, relativeError } from '../helpers/compare';
import { seededTensor } from '../helpers/seeded-tensor';

const load = loadNativeKernels();
// CI installs libdnnl-dev and sets this, so that a broken build fails here instead of skipping.
const required = process.env.PROTOPOOL_REQUIRE_NATIVE === '1';

describe('loading the addon', () => {
  it('is available wherever CI requires it', () => {
    if (required) expect(load).toMatchObject({ ok: true });
    if (!load.ok) expect(load.reason.length).toBeGreaterThan(10);
  });

  it('says why when the addon was not built, from the note the install left', () => {
    const root = mkdtempSync(join(tmpdir(), 'pp-native-'));
    expect(loadNativeKernels(root)).toEqual({ ok: false, reason: 'the addon was never built' });
    mkdirSync(join(root, 'build'));
    writeFileSync(join(root, 'build', 'unavailable.txt'), 'oneDNN headers not found: install libdnnl-dev\n');
    expect(loadNativeKernels(root)).toEqual({
      ok: false,
      reason: 'oneDNN headers not found: install libdnnl-dev',
    });
  });

  it('says why when the addon is there but cannot load', () => {
    const root = mkdtempSync(join(tmpdir(), 'pp-native-'));
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, 'build', 'Release', 'protopool_native.node'), 'not a shared object');
    const r = loadNativeKernels(root);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/^the addon failed to load: .*(invalid ELF|too short)/);
  });
});

/** Uniform in [−scale, scale). */
const t = (shape: number[], seed: number, scale = 1) => seededTensor(shape, seed, -scale, scale);

describe.skipIf(!load.ok)('oneDNN kernels on wasm', () => {
  const both = (f: () => tf.Tensor[]) => onCpuAnd('wasm', f);

  beforeAll(async () => {
    await initEngine('native');
  });
  afterAll(async () => {
    await tf.setBackend('wasm');
  });

  it('replace every kernel they name', () => {
    for (const name of NATIVE_KERNELS) expect(replacedBy(name, 'wasm')).toBe('native');
  });

  type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  const convCases: { x: number[]; f: number[]; s: number | [number, number]; pad: Pad; d?: number }[] = [
    { x: [2, 7, 9, 3], f: [3, 3, 3, 5], s: 1, pad: 'same' },
    { x: [2, 8, 8, 4], f: [3, 3, 4, 6], s: 2, pad: 'same' }, // TF pads only bottom/right here
    { x: [2, 9, 7, 4], f: [3, 3, 4, 6], s: 2, pad: 'valid' },
    {
      x: [3, 12, 12, 3],
      f: [7, 7, 3, 8],
      s: 2,
      pad: [
        [0, 0],
        [3, 3],
        [3, 3],
        [0, 0],
      ],
    }, // a ResNet stem
    { x: [2, 6, 6, 8], f: [1, 1, 8, 16], s: 2, pad: 'valid' }, // a downsampling shortcut
    { x: [2, 5, 6, 3], f: [2, 3, 3, 4], s: [1, 2], pad: 'same' }, // even kernel, unequal strides
    { x: [1, 2, 2, 16], f: [3, 3, 16, 16], s: 1, pad: 'same' }, // ResNet-18's last stage at 64 px: mostly padding
    // Wide enough for the filter gradient by taps (convolution.cc `useTaps`): a small map, and a strided one.
    { x: [2, 2, 2, 128], f: [3, 3, 128, 64], s: 1, pad: 'same' },
    { x: [3, 5, 5, 64], f: [3, 3, 64, 128], s: 2, pad: 'valid' },
  ];

  it.each(convCases)('conv2d $x * $f (stride $s, pad $pad) and both gradients match cpu', async (c) => {
    const [ref, got] = await both(() => {
      const x = t(c.x, 1) as tf.Tensor4D;
      const f = t(c.f, 2, 0.5) as tf.Tensor4D;
      const y = tf.conv2d(x, f, c.s, c.pad);
      const dy = t(y.shape, 3);
      const [dx, df] = tf.grads((a, b) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), dy)),
      )([x, f]);
      return [y, dx!, df!];
    });
    for (let i = 0; i < 3; i++) expect(relativeError(got[i]!, ref[i]!)).toBeLessThan(1e-5);
  });

  it('computes the filter gradients of wide layers on small maps by taps, the others in oneDNN', () => {
    const method = (x: number[], f: number[], stride: number, pad: 'same' | 'valid') =>
      load.ok &&
      load.kernels.conv2dBackpropFilterMethod(
        convGeometry(
          tf.backend_util.computeConv2DInfo(
            x as [number, number, number, number],
            f as [number, number, number, number],
            stride,
            1,
            pad,
          ),
        ),
      );
    // ResNet-18 at 64 px: its last stage (where oneDNN's nhwc kernel falls back to im2col), the strided entry.
    expect(method([50, 2, 2, 512], [3, 3, 512, 512], 1, 'same')).toBe('taps');
    expect(method([50, 18, 18, 64], [3, 3, 64, 128], 2, 'valid')).toBe('taps');
    // The cases above that exercise it.
    expect(method([2, 2, 2, 128], [3, 3, 128, 64], 1, 'same')).toBe('taps');
    expect(method([3, 5, 5, 64], [3, 3, 64, 128], 2, 'valid')).toBe('taps');
    // Narrow sides (the stem, the first stage) and 1×1 shortcuts stay with oneDNN.
    expect(method([50, 70, 70, 3], [7, 7, 3, 64], 2, 'valid')).toBe('onednn');
    expect(method([50, 16, 16, 64], [3, 3, 64, 64], 1, 'same')).toBe('onednn');
    expect(method([50, 16, 16, 64], [1, 1, 64, 128], 2, 'valid')).toBe('onednn');
  });

  it('keeps a reused filter in oneDNN’s layout once, and never answers from a stale copy after the weights change', async () => {
    // A variable used as a filter three times (a frozen layer), then assigned new values (a trained one).
    const run = () => {
      const first = t([3, 3, 16, 32], 21, 0.5);
      const v = tf.variable(first);
      const x = t([2, 6, 6, 16], 22) as tf.Tensor4D;
      const conv = () => tf.conv2d(x, v as unknown as tf.Tensor4D, 1, 'same');
      const kept = () => (load.ok ? load.kernels.info().keptFilterBytes : 0);
      const before = kept();
      const [a, b, c] = [conv(), conv(), conv()];
      const grew = kept() - before;
      const next = t([3, 3, 16, 32], 23, 0.5);
      v.assign(next);
      const [d, e] = [conv(), conv()];
      const out = [a, b, c, d, e].map((y) => y.dataSync() as Float32Array);
      tf.dispose([v, first, x, next, a, b, c, d, e]);
      return { out, grew };
    };
    await tf.setBackend('cpu');
    const start = tf.memory().numTensors;
    const ref = run().out;
    await tf.setBackend('wasm');
    const { out, grew } = run();
    expect(tf.memory().numTensors).toBe(start);
    // The second use keeps one copy: 3·3·16·32 floats in oneDNN's blocked layout (no padding at 16 and 32).
    expect(grew).toBe(3 * 3 * 16 * 32 * 4);
    // The kept copy gives the very bits the first call's fresh reorder gave.
    expect(Buffer.from(out[1]!.buffer).equals(Buffer.from(out[0]!.buffer))).toBe(true);
    expect(Buffer.from(out[2]!.buffer).equals(Buffer.from(out[0]!.buffer))).toBe(true);
    for (let i = 0; i < 5; i++) expect(relativeError(out[i]!, ref[i]!), `call ${i}`).toBeLessThan(1e-5);
    // After assign, the new weights answer: far from the old output, close to cpu's with the new filter.
    expect(relativeError(out[3]!, out[0]!)).toBeGreaterThan(0.5);
  });

  it('gives a filter a token on its second use in a direction, one for good, never reused', () => {
    const a = new FilterTokens();
    const b = new FilterTokens();
    const f: tf.TensorInfo = { dataId: {}, shape: [1], dtype: 'float32' };
    const g: tf.TensorInfo = { dataId: {}, shape: [1], dtype: 'float32' };
    expect(a.of(f, 'forward')).toBe(0);
    const token = a.of(f, 'forward');
    expect(token).toBeGreaterThan(0);
    expect(a.of(f, 'forward')).toBe(token);
    // The input gradient uses a step's new weights once: it counts its own uses.
    expect(a.of(f, 'backwardData')).toBe(0);
    expect(a.of(g, 'forward')).toBe(0);
    const tokens = [a.of(g, 'forward'), a.of(f, 'backwardData'), b.of(f, 'forward'), b.of(f, 'forward')];
    // Another registration's tokens (b) are new numbers too: the addon's kept copies outlive registrations.
    expect(new Set([token, ...tokens.filter((x) => x > 0)]).size).toBe(4);
  });

  it('conv2d with dilation 2 matches cpu', async () => {
    const [ref, got] = await both(() => [
      tf.conv2d(t([2, 9, 9, 3], 4) as tf.Tensor4D, t([3, 3, 3, 4], 5) as tf.Tensor4D, 1, 'same', 'NHWC', 2),
    ]);
    expect(relativeError(got[0]!, ref[0]!)).toBeLessThan(1e-5);
  });

  it.each(['linear', 'relu'] as const)(
    'fused conv2d with bias and %s, and its gradients, match cpu',
    async (activation) => {
      const [ref, got] = await both(() => {
        const x = t([2, 6, 6, 4], 6) as tf.Tensor4D;
        const f = t([3, 3, 4, 5], 7) as tf.Tensor4D;
        const bias = t([5], 8) as tf.Tensor1D;
        const conv = (a: tf.Tensor4D, b: tf.Tensor4D, c: tf.Tensor1D) =>
          tf.fused.conv2d({ x: a, filter: b, bias: c, strides: 1, pad: 'same', activation });
        const y = conv(x, f, bias);
        const dy = t(y.shape, 9);
        const grads = tf.grads((a, b, c) =>
          tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor1D), dy)),
        )([x, f, bias]);
        return [y, ...grads];
      });
      // ReLU must actually cut: some outputs are zero, some not.
      if (activation === 'relu') expect(ref[0]!.filter((v) => v === 0).length).toBeGreaterThan(10);
      for (let i = 0; i < 4; i++) expect(relativeError(got[i]!, ref[i]!)).toBeLessThan(1e-5);
    },
  );

  it('hands activations oneDNN is not given (elu) to the kernel it replaced', async () => {
    const [ref, got] = await both(() => [
      tf.fused.conv2d({
        x: t([1, 5, 5, 2], 10) as tf.Tensor4D,
        filter: t([3, 3, 2, 3], 11) as tf.Tensor4D,
        strides: 1,
        pad: 'same',
        activation: 'elu',
      }),
    ]);
    expect(relativeError(got[0]!, ref[0]!)).toBeLessThan(1e-5);
  });

  it.each([
    { a: [4, 5], b: [5, 3], ta: false, tb: false },
    { a: [5, 4], b: [5, 3], ta: true, tb: false },
    { a: [4, 5], b: [3, 5], ta: false, tb: true },
    { a: [3, 5, 4], b: [3, 6, 5], ta: true, tb: true },
    // Broadcast over the batch: forward only (TF.js's own BatchMatMul gradient refuses broadcast shapes).
    { a: [3, 4, 5], b: [1, 5, 2], ta: false, tb: false, forwardOnly: true },
    { a: [1, 4, 5], b: [3, 5, 2], ta: false, tb: false, forwardOnly: true },
    { a: [2, 3, 4, 5], b: [2, 3, 5, 2], ta: false, tb: false }, // two batch dimensions
  ])('matMul $a · $b (transposed $ta/$tb) and its gradients match cpu', async (c) => {
    const [ref, got] = await both(() => {
      const a = t(c.a, 12);
      const b = t(c.b, 13);
      const y = tf.matMul(a, b, c.ta, c.tb);
      if (c.forwardOnly) return [y];
      const dy = t(y.shape, 14);
      const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(p, q, c.ta, c.tb), dy)),
      )([a, b]);
      return [y, da!, db!];
    });
    expect(got.length).toBe(c.forwardOnly ? 1 : 3);
    for (let i = 0; i < got.length; i++) expect(relativeError(got[i]!, ref[i]!)).toBeLessThan(1e-5);
  });

  it('fused matMul with bias and ReLU matches cpu', async () => {
    const [ref, got] = await both(() => [
      tf.fused.matMul({ a: t([6, 4], 15), b: t([4, 7], 16), bias: t([7], 17), activation: 'relu' }),
    ]);
    expect(ref[0]!.filter((v) => v === 0).length).toBeGreaterThan(3);
    expect(relativeError(got[0]!, ref[0]!)).toBeLessThan(1e-6);
  });

  it.each([
    { x: [2, 12, 12, 5], k: 3, s: 2, pad: 'same' as const }, // ResNet's stem pool, bottom/right padding
    { x: [2, 8, 8, 3], k: 2, s: 2, pad: 'valid' as const }, // the small CNN's pools
    { x: [1, 7, 7, 4], k: 3, s: 1, pad: 'same' as const },
  ])(
    'max-pool gradient $x (k $k, stride $s, $pad) gives each window to its first maximum, as cpu does',
    async (c) => {
      const [ref, got] = await both(() => {
        // ReLU'd input: many zeros, so ties decide where the gradient goes.
        const x = tf.relu(t(c.x, 18)) as tf.Tensor4D;
        const y = tf.maxPool(x, c.k, c.s, c.pad);
        const dy = t(y.shape, 19);
        return [
          tf.grad((a) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, c.k, c.s, c.pad), dy)))(x),
          tf.sum(dy),
        ];
      });
      expect(relativeError(got[0]!, ref[0]!)).toBeLessThan(1e-6);
      // No gradient is lost at the padded edge: Σdx = Σdy.
      const total = got[0]!.reduce((a, b) => a + b, 0);
      expect(total).toBeCloseTo(got[1]![0]!, 3);
    },
  );

  it.each([
    { shape: [2, 7, 9, 5], begin: [0, 1, 2, 0], size: [2, 5, 6, 5] }, // a pad's gradient: inner rows
    { shape: [3, 4, 6, 8], begin: [1, 0, 1, 2], size: [2, 4, 4, 3] }, // part of each channel row
    { shape: [10, 6], begin: [2, 1], size: [5, -1] }, // rank 2, size −1: to the end
    { shape: [7], begin: [3], size: [4] },
  ])('slice of $shape at $begin, size $size, matches cpu (float32 and int32)', async (c) => {
    const [ref, got] = await both(() => {
      const x = t(c.shape, 20);
      return [
        tf.slice(x, c.begin, c.size),
        tf.cast(tf.slice(tf.cast(tf.mul(x, 100), 'int32'), c.begin, c.size), 'float32'),
      ];
    });
    expect(Array.from(got[0]!)).toEqual(Array.from(ref[0]!));
    expect(Array.from(got[1]!)).toEqual(Array.from(ref[1]!));
  });

  it.each([
    {
      shape: [2, 5, 6, 3],
      paddings: [
        [0, 0],
        [3, 3],
        [3, 3],
        [0, 0],
      ],
      value: 0,
    }, // a ResNet stem's padding
    {
      shape: [1, 4, 4, 2],
      paddings: [
        [0, 0],
        [1, 2],
        [0, 1],
        [1, 1],
      ],
      value: Number.NEGATIVE_INFINITY,
    },
    {
      shape: [3, 4],
      paddings: [
        [1, 0],
        [2, 3],
      ],
      value: 1.5,
    },
  ] as { shape: number[]; paddings: [number, number][]; value: number }[])(
    'pad $shape by $paddings with $value, and its gradient, match cpu',
    async (c) => {
      const [ref, got] = await both(() => {
        const x = t(c.shape, 21);
        const y = tf.pad(x, c.paddings, c.value);
        const dy = t(y.shape, 22);
        return [y, tf.grad((a) => tf.sum(tf.mul(tf.pad(a, c.paddings, c.value), dy)))(x)];
      });
      expect(Array.from(got[0]!)).toEqual(Array.from(ref[0]!));
      expect(Array.from(got[1]!)).toEqual(Array.from(ref[1]!));
    },
  );

  it('ReLU’s gradient (read from its output) passes dy exactly where the input was positive', async () => {
    const [ref, got] = await both(() => {
      // Exact zeros among the inputs (halves, rounded): the gradient there is 0, as tfjs-core's step(x) gives.
      const x = tf.div(tf.round(tf.mul(t([4, 6, 6, 8], 23), 2)), 2);
      const dy = t([4, 6, 6, 8], 24);
      return [tf.grad((a) => tf.sum(tf.mul(tf.relu(a), dy)))(x), x];
    });
    expect(ref[1]!.filter((v) => v === 0).length).toBeGreaterThan(100);
    expect(ref[1]!.filter((v) => v < 0).length).toBeGreaterThan(100);
    expect(Array.from(got[0]!)).toEqual(Array.from(ref[0]!));
  });

  it.each([true, false])(
    'inference-mode batch norm (with scale and offset: %s) matches cpu',
    async (affine) => {
      const [ref, got] = await both(() => {
        const x = t([2, 5, 5, 6], 25);
        const variance = tf.abs(t([6], 26));
        const args = affine
          ? ([t([6], 27), tf.add(t([6], 28, 0.5), 1)] as const)
          : ([undefined, undefined] as const);
        return [tf.batchNorm(x, t([6], 29), variance, args[0], args[1], 1e-3)];
      });
      expect(relativeError(got[0]!, ref[0]!)).toBeLessThan(1e-6);
    },
  );

  it('one Adam step in one pass equals the step as tfjs ops (weight decay included), to the bit', async () => {
    const run = (native: boolean) => {
      if (load.ok) {
        if (native) registerNativeKernels(load.kernels);
        else removeNativeKernels();
      }
      // The fused step runs exactly when its kernel is there.
      expect(tf.getKernel('ProtoPoolAdam', 'wasm') !== undefined).toBe(native);
      const w = tf.tidy(() => [tf.variable(t([300, 70], 30)), tf.variable(t([70], 31))]);
      const opt = new GroupedAdam([
        { name: 'a', variables: [w[0]!], lr: 0.003, weightDecay: 1e-3 },
        { name: 'b', variables: [w[1]!], lr: 0.01, weightDecay: 0 },
      ]);
      for (let step = 0; step < 4; step++) {
        const grads = { [w[0]!.name]: t([300, 70], 40 + step), [w[1]!.name]: t([70], 50 + step) };
        opt.apply(grads, ['a', 'b']);
        tf.dispose(Object.values(grads));
      }
      const out = w.map((v) => v.dataSync().slice() as Float32Array);
      opt.dispose();
      tf.dispose(w);
      return out;
    };
    const start = tf.memory().numTensors;
    const [ops, fused] = [run(false), run(true)];
    expect(tf.memory().numTensors).toBe(start);
    for (let i = 0; i < 2; i++) expect(Array.from(fused[i]!)).toEqual(Array.from(ops[i]!));
  });

  it('the addon refuses a buffer of the wrong size with a RangeError, not a crash', () => {
    if (!load.ok) return;
    const g = Int32Array.of(1, 4, 4, 2, 3, 3, 2, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1);
    expect(() =>
      load.kernels.conv2d(new Float32Array(31), new Float32Array(36), null, new Float32Array(32), g, false),
    ).toThrow(/x has 31 elements, expected 32/);
    expect(() =>
      load.kernels.conv2d(
        new Float32Array(32),
        new Float32Array(36),
        null,
        new Float32Array(32),
        Int32Array.of(1, 2),
        false,
      ),
    ).toThrow(/17 fields/);
  });

  it('turn off and on again (the benchmarks compare both)', async () => {
    removeNativeKernels();
    expect(replacedBy('Conv2D', 'wasm')).toBeUndefined();
    // Where wasm's own faster kernel was underneath, it is back.
    expect(replacedBy('MaxPoolGrad', 'wasm')).toBe('wasm');
    if (load.ok) registerNativeKernels(load.kernels);
    expect(replacedBy('Conv2D', 'wasm')).toBe('native');
    expect(replacedBy('MaxPoolGrad', 'wasm')).toBe('native');
  });
});
