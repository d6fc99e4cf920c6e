// Training-mode batch norm as one fused op: the same outputs, gradients and moving averages as tfjs-layers'.

import { loadNativeKernels } from '@protopool/native-kernels';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { registerNativeKernels, removeNativeKernels } from '../../gpu-backend/src/kernels/native';
import { BatchNormalization } from '../../gpu-backend/src/model/batch-norm';
import { trainableVariables } from '../../gpu-backend/src/tfjs-internals';
import { relativeError } from '../helpers/compare';
import { seededTensor } from '../helpers/seeded-tensor';

const load = loadNativeKernels();

const t = seededTensor;

/**
 * Two training steps' worth of one layer: output, dx, dγ, dβ and the moving statistics, each read back.
 * Inputs are offset and scaled (mean 3, wide spread) so that a one-pass float32 variance would show.
 */
function layerRun(fused: boolean): Float32Array[] {
  if (load.ok) {
    if (fused) registerNativeKernels(load.kernels);
    else removeNativeKernels();
  }
  const start = tf.memory().numTensors;
  const layer = new BatchNormalization({
    momentum: 0.9,
    epsilon: 1e-5,
    gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 3 }),
    betaInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: 4 }),
  });
  const x = tf.tidy(() => tf.add(t([4, 5, 6, 7], 1, -4, 4), 3)) as tf.Tensor4D;
  const dy = t([4, 5, 6, 7], 2);
  layer.build(x.shape);
  const out: Float32Array[] = [];
  const f = (input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, dy));
  const dx = tf.grad(f)(x);
  const vars = trainableVariables(layer);
  const { value, grads } = tf.variableGrads(() => f(x) as tf.Scalar, vars);
  const y = tf.tidy(() => layer.apply(x, { training: true }) as tf.Tensor);
  for (const r of [
    y,
    dx,
    ...vars.map((v) => grads[v.name]!),
    ...layer.nonTrainableWeights.map((w) => w.read()),
  ]) {
    out.push(r.dataSync() as Float32Array);
  }
  tf.dispose([x, dy, dx, y, value, ...Object.values(grads)]);
  for (const w of layer.weights) w.dispose();
  expect(tf.memory().numTensors).toBe(start);
  return out;
}

describe.skipIf(!load.ok)('fused training-mode batch norm (native kernels)', () => {
  beforeAll(async () => {
    await initEngine('native');
  });
  afterAll(() => {
    if (load.ok) registerNativeKernels(load.kernels);
  });

  it('gives tfjs-layers’ output, gradients (x, γ, β) and moving mean and variance', () => {
    const reference = layerRun(false);
    const fused = layerRun(true);
    expect(fused.map((f) => f.length)).toEqual([840, 840, 7, 7, 7, 7]);
    // Moving averages after three training calls differ from their start: they were updated.
    expect(fused[4]!.some((v) => Math.abs(v) > 0.1)).toBe(true);
    for (let i = 0; i < reference.length; i++)
      expect(relativeError(fused[i]!, reference[i]!), `output ${i}`).toBeLessThan(2e-6);
  });

  it('passes the gradients of the batch statistics when a loss uses them', () => {
    // Not the layer's use (its statistics only feed the moving averages) but the op's contract.
    const run = (fused: boolean) => {
      if (load.ok) {
        if (fused) registerNativeKernels(load.kernels);
        else removeNativeKernels();
      }
      const x = tf.tidy(() => tf.add(t([3, 4, 4, 5], 5, -2, 2), 1)) as tf.Tensor4D;
      const gamma = t([5], 6, 0.5, 1.5);
      const beta = t([5], 7);
      const g = tf.grad((input) => {
        const [y, mean, variance] = fused
          ? (tf
              .engine()
              .runKernel(
                'ProtoPoolBatchNormTraining',
                { x: input, gamma, beta },
                { epsilon: 1e-3 },
              ) as tf.Tensor[])
          : (() => {
              const m = tf.moments(input, [0, 1, 2]);
              return [tf.batchNorm(input, m.mean, m.variance, beta, gamma, 1e-3), m.mean, m.variance];
            })();
        return tf.addN([tf.sum(tf.square(y!)), tf.sum(tf.mul(mean!, 3)), tf.sum(tf.mul(variance!, -2))]);
      })(x);
      const data = g.dataSync() as Float32Array;
      tf.dispose([x, gamma, beta, g]);
      return data;
    };
    expect(relativeError(run(true), run(false))).toBeLessThan(1e-5);
  });

  it('runs tfjs-layers’ own code in inference, so serving is unchanged', () => {
    const layer = new BatchNormalization({});
    const x = t([2, 3, 3, 4], 8);
    layer.build(x.shape);
    const kernels: string[] = [];
    const y = tf.profile(() => layer.apply(x, { training: false }) as tf.Tensor);
    return y.then((p) => {
      kernels.push(...p.kernels.map((k) => k.name));
      expect(kernels).not.toContain('ProtoPoolBatchNormTraining');
      tf.dispose([x, p.result as tf.Tensor]);
      for (const w of layer.weights) w.dispose();
    });
  });
});

describe.skipIf(!load.ok)('the native batch-norm kernel on more than one thread', () => {
  // 50×32×32×8: past the size where its passes go parallel, with 8 channels so each block sums many rows.
  const [rows, c] = [50 * 32 * 32, 8];
  const seeded = (seed: number, offset: number) =>
    Float32Array.from(
      { length: rows * c },
      (_, i) => offset + Math.sin(seed * 1e-3 * (i + 1) + i * 0.37) * 4,
    );
  const x = seeded(1, 3);
  const dy = seeded(2, 0);
  const gamma = Float32Array.from({ length: c }, (_, i) => 0.5 + i / 8);
  const beta = Float32Array.from({ length: c }, (_, i) => i / 4 - 1);

  // Where the order of a sum shows even in float32: ±1e16 at the first and last row and ones between, so a
  // sum that meets 1e16 first loses every 1 it adds (1e16's spacing in double is 2). Any split of the rows that
  // follows the thread count gives another mean.
  const extreme = Float32Array.from({ length: rows * c }, (_, i) =>
    i < c ? 1e16 : i >= (rows - 1) * c ? -1e16 : 1,
  );

  function run(threads: number, input = x, grad = dy) {
    const k = load.ok ? load.kernels : undefined;
    k!.setThreads(threads);
    const out = {
      y: new Float32Array(rows * c),
      mean: new Float32Array(c),
      variance: new Float32Array(c),
      dx: new Float32Array(rows * c),
      dGamma: new Float32Array(c),
      dBeta: new Float32Array(c),
    };
    k!.batchNormTraining(input, gamma, beta, out.y, out.mean, out.variance, c, 1e-5);
    k!.batchNormTrainingGrad(
      input,
      grad,
      gamma,
      out.mean,
      out.variance,
      null,
      null,
      out.dx,
      out.dGamma,
      out.dBeta,
      c,
      1e-5,
    );
    return out;
  }

  afterAll(() => {
    if (load.ok) load.kernels.setThreads(1);
  });

  it('gives the same bits on one thread and on two, so a model does not depend on --threads through it', () => {
    for (const [input, grad] of [
      [x, dy],
      [extreme, extreme],
    ]) {
      const one = run(1, input, grad);
      const two = run(2, input, grad);
      for (const key of Object.keys(one) as (keyof typeof one)[])
        expect(Buffer.from(two[key].buffer).equals(Buffer.from(one[key].buffer)), key).toBe(true);
    }
  });

  it('computes the statistics and dβ a double-precision sum by hand gives', () => {
    const { mean, variance, dBeta } = run(2);
    for (let ch = 0; ch < c; ch++) {
      let [s, sdy] = [0, 0];
      for (let r = 0; r < rows; r++) [s, sdy] = [s + x[r * c + ch]!, sdy + dy[r * c + ch]!];
      const m = s / rows;
      let sq = 0;
      for (let r = 0; r < rows; r++) sq += (x[r * c + ch]! - m) ** 2;
      expect(mean[ch]).toBe(Math.fround(m));
      expect(variance[ch]).toBe(Math.fround(sq / rows));
      expect(dBeta[ch]).toBe(Math.fround(sdy));
    }
  });
});

describe('the batch-norm layer class', () => {
  it('is what a saved model with BatchNormalization layers loads as, with the same config', async () => {
    const input = tf.input({ shape: [4, 4, 3] });
    const out = new BatchNormalization({ momentum: 0.9, epsilon: 1e-5, name: 'bn' }).apply(
      input,
    ) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const json = model.toJSON(null, false) as unknown as {
      config: { layers: { class_name: string; config: Record<string, unknown> }[] };
    };
    const layer = json.config.layers.find((l) => l.config.name === 'bn')!;
    expect(layer.class_name).toBe('BatchNormalization');
    expect(layer.config).toMatchObject({ momentum: 0.9, epsilon: 1e-5, axis: -1 });
    const saved: tf.io.ModelArtifacts[] = [];
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        saved.push(a);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved[0]!));
    expect(loaded.getLayer('bn')).toBeInstanceOf(BatchNormalization);
    model.dispose();
    loaded.dispose();
  });
});
