// The TF.js internals this project relies on still hold (a TF.js upgrade that moves one fails here, by name).

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { adamState, checkTfjsInternals, setLearningRate } from '../../gpu-backend/src/tfjs-internals';

describe('tfjs internals', () => {
  it('every accessor in tfjs-internals.ts works on this TF.js, with nothing leaked', async () => {
    await tf.setBackend('cpu');
    const start = tf.memory().numTensors;
    await expect(checkTfjsInternals()).resolves.toBeUndefined();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('Adam’s learning rate set through the accessor is the one its step uses', async () => {
    await tf.setBackend('cpu');
    const v = tf.variable(tf.tensor1d([1]));
    const adam = tf.train.adam(0.1);
    setLearningRate(adam, 0.25);
    tf.tidy(() => adam.applyGradients([{ name: v.name, tensor: tf.tensor1d([2]) }]));
    // Adam's first step moves a weight by lr·m̂/(√v̂ + ε) = lr·g/|g| ≈ lr.
    expect(v.dataSync()[0]).toBeCloseTo(1 - 0.25, 5);
    expect(adamState(adam).accumulatedFirstMoment[0]?.variable.dataSync()[0]).toBeCloseTo(0.2, 6); // (1 − β₁)·g
    adam.dispose();
    v.dispose();
  });
});
