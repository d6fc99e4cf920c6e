// @protopool/gpu-backend as a library: importing it runs no command, and its API builds, runs and saves a model.

import * as backend from '@protopool/gpu-backend';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';

describe('@protopool/gpu-backend entry', () => {
  it('exports the library (model, training, explanations, files, service) and runs no CLI on import', () => {
    for (const name of [
      'initEngine',
      'ProtoPoolModel',
      'buildBackbone',
      'train',
      'TrainConfig',
      'evaluate',
      'explainBatch',
      'loadModelDir',
      'serialiseModel',
      'ModelService',
      'startServer',
      'createApp',
      'importResnet',
      'readCheckpoint',
    ]) {
      expect(backend).toHaveProperty(name);
    }
    // Had the import run the CLI, it would have parsed vitest's argv and exited the worker by now.
    expect(process.exitCode ?? 0).toBe(0);
  });

  it('builds, freezes and serialises a model through the entry alone', async () => {
    const engine = await backend.initEngine('cpu');
    expect(engine.backend).toBe('cpu');
    const start = tf.memory().numTensors;
    const model = backend.ProtoPoolModel.create({
      ...HEAD_DEFAULTS,
      classes: 2,
      prototypes: 4,
      slotsPerClass: 2,
      depth: 8,
      backbone: 'small-cnn',
      inputShape: [28, 28, 1],
      seed: 1,
    });
    expect(await model.freeze()).toEqual({ batchNorms: 5, relus: 5 });
    const x = tf.zeros([1, 28, 28, 1]) as tf.Tensor4D;
    const logits = tf.tidy(() => model.forward(x, { kind: 'inference' }, false).logits);
    expect(logits.shape).toEqual([1, 2]);
    const saved = await backend.serialiseModel(model);
    expect(saved.version).toMatch(/^[0-9a-f]{64}$/);
    tf.dispose([x, logits]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
