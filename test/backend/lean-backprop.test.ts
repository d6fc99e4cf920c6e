// Backpropagation that frees intermediate gradients as it goes: the same gradients, a lower peak.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { useLeanBackprop, useStockBackprop } from '../../gpu-backend/src/kernels/lean-backprop';
import { seededTensor } from '../helpers/seeded-tensor';

const t = (shape: number[], seed: number) => seededTensor(shape, seed);

/**
 * A small residual network's loss: conv → batch norm → ReLU → conv, a skip connection (its gradient is
 * handed through unchanged), a reshape, an op used twice, and an input that is also an output (x1 below).
 */
function loss(x: tf.Tensor4D, w1: tf.Tensor4D, w2: tf.Tensor4D): tf.Scalar {
  const h = tf.relu(tf.conv2d(x, w1, 1, 'same'));
  const m = tf.moments(h, [0, 1, 2]);
  const x1 = tf.div(tf.sub(h, m.mean), tf.sqrt(tf.add(m.variance, 1e-3))) as tf.Tensor4D;
  const y = tf.add(tf.conv2d(x1, w2, 1, 'same'), x1);
  return tf.sum(tf.mul(tf.reshape(y, [-1]), tf.reshape(tf.square(y), [-1])));
}

describe('lean backpropagation', () => {
  const vars: tf.Variable[] = [];
  beforeAll(async () => {
    await initEngine('wasm');
    vars.push(tf.variable(t([3, 3, 4, 8], 2)), tf.variable(t([3, 3, 8, 8], 3)));
  });
  afterAll(() => {
    useLeanBackprop();
    tf.dispose(vars);
  });

  async function run(lean: boolean) {
    if (lean) useLeanBackprop();
    else useStockBackprop();
    const x = t([4, 12, 12, 4], 1) as tf.Tensor4D;
    const start = tf.memory().numTensors;
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => loss(x, vars[0] as tf.Tensor4D, vars[1] as tf.Tensor4D),
        vars,
      );
      const flat = vars.map((v) => grads[v.name]!.dataSync().slice());
      tf.dispose([value, ...Object.values(grads)]);
      return flat as unknown as tf.Tensor[];
    });
    expect(tf.memory().numTensors).toBe(start);
    x.dispose();
    return { grads: profile.result as unknown as Float32Array[], peak: profile.peakBytes };
  }

  it('gives tfjs-core’s gradients to the bit, leaks nothing, and peaks lower', async () => {
    const stock = await run(false);
    const lean = await run(true);
    for (let i = 0; i < vars.length; i++)
      expect(Array.from(lean.grads[i]!)).toEqual(Array.from(stock.grads[i]!));
    // Each freed gradient is activation-sized: 4×12×12×8 float32 = 18 KB; several go before the end.
    expect(stock.peak - lean.peak).toBeGreaterThan(3 * 4 * 12 * 12 * 8 * 4);
  });

  it('is what the engine installs', () => {
    expect(tf.engine().gradients.name).toBe('gradients');
    expect(tf.engine().gradients.toString()).toContain('backprop(map, filtered');
  });
});
