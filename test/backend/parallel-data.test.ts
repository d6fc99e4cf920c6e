// Data-parallel gradients and Adam steps on worker threads equal single-process training of the same model.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataParallelTrainer, splitRows } from '../../bench/parallel/data-parallel';
import { type TinyCnnOptions, tinyCnnReplica } from '../../bench/parallel/examples';
import { initEngine } from '../../gpu-backend/src/engine';
import { seededArray } from '../helpers/random';

const options: TinyCnnOptions = { seed: 3, inputShape: [6, 6, 2], classes: 3, learningRate: 0.01 };
const rows = 7; // odd on purpose: the slices differ in size and must be weighted
const x = { data: seededArray(rows * 6 * 6 * 2, 11), shape: [rows, 6, 6, 2] };
const labels = Array.from({ length: rows }, (_, i) => (i * 2) % 3);
const y = {
  data: new Float32Array(labels.flatMap((l) => [0, 1, 2].map((c) => (c === l ? 1 : 0)))),
  shape: [rows, 3],
};
const batch = () => ({
  x: { data: x.data.slice(), shape: x.shape },
  y: { data: y.data.slice(), shape: y.shape },
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('data-parallel training', () => {
  let trainer: DataParallelTrainer;

  beforeAll(async () => {
    await initEngine('wasm');
    trainer = await DataParallelTrainer.create({
      module: new URL('../../bench/parallel/examples.ts', import.meta.url).href,
      exportName: 'tinyCnnReplica',
      options,
      replicas: 2,
    });
  });

  afterAll(async () => {
    await trainer?.dispose();
  });

  it('splits rows into near-equal slices', () => {
    expect(splitRows(7, 2)).toEqual([
      [0, 4],
      [4, 7],
    ]);
    expect(splitRows(1, 3)).toEqual([
      [0, 1],
      [1, 1],
      [1, 1],
    ]);
  });

  it('averaged gradients and Adam steps equal single-process ones', async () => {
    const start = tf.memory().numTensors;
    const local = tinyCnnReplica(options);
    const inputs = { x: tf.tensor(x.data, x.shape), y: tf.tensor(y.data, y.shape) };
    const flat = (ts: tf.Tensor[]) => Float32Array.from(ts.flatMap((t) => Array.from(t.dataSync())));

    // Same seeds: the replicas start from the local model's weights.
    expect(maxAbsDiff(await trainer.getWeights(), flat(local.variables))).toBe(0);

    const { value, grads } = tf.variableGrads(() => local.loss(inputs), local.variables);
    const par = await trainer.gradients(batch());
    expect(Math.abs(par.loss - value.dataSync()[0]!)).toBeLessThan(1e-5);
    local.variables.forEach((v, i) => {
      expect(maxAbsDiff(par.grads[i]!, grads[v.name]!.dataSync() as Float32Array)).toBeLessThan(1e-4);
    });
    expect(Math.max(...par.grads.map((g) => Math.max(...Array.from(g, Math.abs))))).toBeGreaterThan(1e-3);
    tf.dispose([value, ...Object.values(grads)]);

    for (let s = 0; s < 3; s++) {
      const loss = await trainer.step(batch());
      const localLoss = local.optimizer!.minimize(() => local.loss(inputs), true, local.variables)!;
      expect(Math.abs(loss - localLoss.dataSync()[0]!)).toBeLessThan(1e-4);
      localLoss.dispose();
    }
    expect(maxAbsDiff(await trainer.getWeights(), flat(local.variables))).toBeLessThan(1e-4);

    local.optimizer!.dispose();
    tf.dispose([...local.variables, inputs.x, inputs.y]);
    expect(tf.memory().numTensors).toBe(start);
  });
});
