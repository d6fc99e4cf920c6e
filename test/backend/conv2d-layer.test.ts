// The backbones' Conv2D layer: tfjs-layers' numbers, but backprop skips gradients nothing needs (the image's).

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Conv2D, conv2d } from '../../gpu-backend/src/model/conv2d';
import { trainableVariables } from '../../gpu-backend/src/tfjs-internals';
import { seededTensor } from '../helpers/seeded-tensor';

const t = seededTensor;

/** Kernels run by a gradient of the layer's output with respect to its kernel only (x is a plain tensor). */
async function kernelsOfFilterGradient(layer: tf.layers.Layer, x: tf.Tensor4D): Promise<string[]> {
  layer.build(x.shape);
  const kernel = trainableVariables(layer)[0]!;
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar,
      [kernel],
    );
    tf.dispose([value, ...Object.values(grads)]);
  });
  return profile.kernels.map((k) => k.name);
}

const disposeWeights = (layer: tf.layers.Layer) => {
  for (const w of layer.weights) w.dispose();
};

describe('Conv2D (backbones)', () => {
  const config = { filters: 4, kernelSize: 3, strides: 2, padding: 'same' as const, useBias: false };

  it('gives tfjs-layers’ outputs and filter gradients, to the bit', async () => {
    await tf.setBackend('cpu');
    const start = tf.memory().numTensors;
    const x = t([2, 7, 7, 3], 1) as tf.Tensor4D;
    const ours = conv2d({ ...config, kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) });
    const stock = tf.layers.conv2d({
      ...config,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }),
    });
    const run = (layer: tf.layers.Layer) =>
      tf.tidy(() => {
        const kernel = trainableVariables(layer)[0]!;
        const y = layer.apply(x) as tf.Tensor;
        const { grads } = tf.variableGrads(
          () => tf.sum(tf.square(layer.apply(x) as tf.Tensor)) as tf.Scalar,
          [kernel],
        );
        return [y.dataSync(), grads[kernel.name]!.dataSync()];
      });
    ours.build(x.shape);
    stock.build(x.shape);
    const [y1, g1] = run(ours);
    const [y2, g2] = run(stock);
    expect(y1).toEqual(y2);
    expect(g1).toEqual(g2);
    x.dispose();
    disposeWeights(ours);
    disposeWeights(stock);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('computes no gradient for an input that needs none, where tfjs-layers’ does', async () => {
    await tf.setBackend('cpu');
    const x = t([2, 7, 7, 3], 2) as tf.Tensor4D;
    const ours = conv2d(config);
    const stock = tf.layers.conv2d(config);
    const oursKernels = await kernelsOfFilterGradient(ours, x);
    const stockKernels = await kernelsOfFilterGradient(stock, x);
    expect(oursKernels).toContain('Conv2DBackpropFilter');
    expect(oursKernels).not.toContain('Conv2DBackpropInput');
    expect(stockKernels).toContain('Conv2DBackpropInput'); // the waste this layer removes
    x.dispose();
    disposeWeights(ours);
    disposeWeights(stock);
  });

  it('gives tfjs-layers’ outputs for a layer with a bias and an activation (its own path)', async () => {
    await tf.setBackend('cpu');
    const x = t([1, 5, 5, 2], 3) as tf.Tensor4D;
    const withBias = {
      filters: 3,
      kernelSize: 3,
      activation: 'relu' as const,
      biasInitializer: 'ones' as const,
    };
    const ours = conv2d({ ...withBias, kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) });
    const stock = tf.layers.conv2d({
      ...withBias,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }),
    });
    const [a, b] = [ours, stock].map((layer) => tf.tidy(() => (layer.apply(x) as tf.Tensor).dataSync()));
    expect(a).toEqual(b);
    x.dispose();
    disposeWeights(ours);
    disposeWeights(stock);
  });

  it('is the class a saved model’s Conv2D layers load as', () => {
    const input = tf.input({ shape: [6, 6, 1] });
    const model = tf.model({ inputs: input, outputs: conv2d(config).apply(input) as tf.SymbolicTensor });
    const loaded = tf.models.modelFromJSON({ modelTopology: model.toJSON(null, false) } as never);
    return loaded.then((m) => {
      expect(m.layers[1]).toBeInstanceOf(Conv2D);
      m.dispose();
      model.dispose();
    });
  });
});
