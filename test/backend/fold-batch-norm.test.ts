// Batch norm folded into the convolutions for inference: the same features, fewer kernels, nothing leaked.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBackbone } from '../../gpu-backend/src/model/backbones';
import { foldBatchNorm } from '../../gpu-backend/src/model/fold-batch-norm';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';
import { relativeError } from '../helpers/compare';
import { seededTensor } from '../helpers/seeded-tensor';

const t = seededTensor;

/** Gives every batch norm statistics and affine weights far from the identity (fresh layers have γ 1, μ 0, σ² 1). */
function randomiseBatchNorms(model: tf.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const c = layer.weights[0]!.shape[0]!;
    tf.tidy(() =>
      layer.setWeights([
        t([c], s++, 0.5, 1.5), // γ
        t([c], s++, -1, 1), // β
        t([c], s++, -1, 1), // moving mean
        t([c], s++, 0.2, 2), // moving variance
      ]),
    );
  }
}

const kernelsOf = async (f: () => tf.Tensor) => {
  const profile = await tf.profile(() => {
    f().dispose();
  });
  return profile.kernels.map((k) => k.name);
};

describe('foldBatchNorm', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([
    { name: 'small-cnn' as const, shape: [28, 28, 1] as [number, number, number], bns: 5, relus: 5 },
    // 20 conv-BN pairs; a ReLU follows the stem and each block's first conv (the others follow an add).
    { name: 'resnet18' as const, shape: [32, 32, 3] as [number, number, number], bns: 20, relus: 9 },
  ])('folds every conv-BN pair of $name and gives its features to float32 rounding', async (c) => {
    const start = tf.memory().numTensors;
    const model = buildBackbone({ name: c.name, inputShape: c.shape, seed: 3 });
    randomiseBatchNorms(model, 10);
    const { model: folded, folded: counts } = await foldBatchNorm(model);
    expect(counts).toEqual({ batchNorms: c.bns, relus: c.relus });
    expect(folded.layers.filter((l) => l.getClassName() === 'BatchNormalization')).toHaveLength(0);

    const x = t([2, ...c.shape], 1, -2, 2);
    const run = (m: tf.LayersModel) => tf.tidy(() => m.apply(x, { training: false }) as tf.Tensor);
    const [want, got] = [run(model), run(folded)];
    expect(got.shape).toEqual(want.shape);
    expect(relativeError(got.dataSync(), want.dataSync())).toBeLessThan(1e-5);
    // Nonzero both ways: the statistics must have mattered (the ReLUs did not zero everything).
    expect(want.dataSync().some((v) => v > 0)).toBe(true);

    const before = await kernelsOf(() => run(model));
    const after = await kernelsOf(() => run(folded));
    expect(before.filter((k) => k === 'FusedBatchNorm')).toHaveLength(c.bns);
    expect(after).not.toContain('FusedBatchNorm');
    expect(after.length).toBeLessThanOrEqual(before.length - c.bns - c.relus);

    tf.dispose([x, want, got]);
    folded.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('leaves a batch norm that does not directly follow a plain, single-use convolution', async () => {
    const input = tf.input({ shape: [6, 6, 2] });
    const onInput = tf.layers.batchNormalization({ name: 'on_input' }).apply(input) as tf.SymbolicTensor;
    const shared = tf.layers
      .conv2d({ filters: 3, kernelSize: 3, padding: 'same', useBias: false, name: 'shared' })
      .apply(onInput) as tf.SymbolicTensor;
    const afterShared = tf.layers
      .batchNormalization({ name: 'after_shared' })
      .apply(shared) as tf.SymbolicTensor;
    // `shared` is read twice, so folding its batch norm would change the add's other input.
    const sum = tf.layers.add().apply([afterShared, shared]) as tf.SymbolicTensor;
    const activated = tf.layers
      .conv2d({ filters: 3, kernelSize: 1, activation: 'sigmoid', name: 'activated' })
      .apply(sum) as tf.SymbolicTensor;
    const out = tf.layers.batchNormalization({ name: 'after_sigmoid' }).apply(activated) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomiseBatchNorms(model, 20);
    const { model: folded, folded: counts } = await foldBatchNorm(model);
    expect(counts).toEqual({ batchNorms: 0, relus: 0 });
    const x = t([1, 6, 6, 2], 2);
    const [want, got] = [model, folded].map((m) => m.predict(x) as tf.Tensor);
    expect(relativeError(got!.dataSync(), want!.dataSync())).toBeLessThan(1e-6);
    tf.dispose([x, want!, got!]);
    folded.dispose();
    model.dispose();
  });
});

describe('ProtoPoolModel.freeze', () => {
  it('runs inference through the folded copy: the same logits, and training still uses the layers', async () => {
    await tf.setBackend('cpu');
    const start = tf.memory().numTensors;
    const model = ProtoPoolModel.create({
      ...HEAD_DEFAULTS,
      classes: 3,
      prototypes: 6,
      slotsPerClass: 2,
      depth: 8,
      backbone: 'small-cnn',
      inputShape: [28, 28, 1],
      seed: 4,
    });
    randomiseBatchNorms(model.features, 30);
    const x = t([2, 28, 28, 1], 5, -2, 2) as tf.Tensor4D;
    const logits = () => tf.tidy(() => model.forward(x, { kind: 'inference' }, false).logits.dataSync());
    const want = logits();
    expect(await model.freeze()).toEqual({ batchNorms: 5, relus: 5 });
    const inference = await kernelsOf(() =>
      tf.tidy(() => model.forward(x, { kind: 'inference' }, false).logits),
    );
    const training = await kernelsOf(() =>
      tf.tidy(() => model.forward(x, { kind: 'inference' }, true).logits),
    );
    expect(relativeError(logits(), want)).toBeLessThan(1e-5);
    expect(inference).not.toContain('FusedBatchNorm');
    // Training-mode batch norm computes moments: Mean or the fused training kernel, but runs at all.
    expect(training.length).toBeGreaterThan(inference.length);
    x.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
