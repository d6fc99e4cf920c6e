// Replica factories for the data-parallel trainer: a tiny seeded CNN (tests) and the backbones (bench).
import * as tf from '@tensorflow/tfjs';
import { type BackboneName, buildBackbone } from '../../gpu-backend/src/model/backbones';
import { trainableVariables } from '../../gpu-backend/src/tfjs-internals';
import type { Replica } from './protocol';

export interface TinyCnnOptions {
  seed: number;
  inputShape: [number, number, number];
  classes: number;
  learningRate?: number;
}

/** conv → ReLU → conv(stride 2) → dense, softmax cross-entropy on one-hot `y`; no batch norm. */
export function tinyCnnReplica(options: unknown): Replica {
  const o = options as TinyCnnOptions;
  const init = (k: number) => tf.initializers.glorotUniform({ seed: o.seed * 100 + k });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: o.inputShape,
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.conv2d({
        filters: 6,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(2),
      }),
      tf.layers.flatten(),
      tf.layers.dense({ units: o.classes, kernelInitializer: init(3) }),
    ],
  });
  return {
    variables: trainableVariables(model),
    loss: (batch) =>
      tf.tidy(() => tf.losses.softmaxCrossEntropy(batch.y!, model.apply(batch.x!) as tf.Tensor) as tf.Scalar),
    optimizer: tf.train.adam(o.learningRate ?? 1e-2),
  };
}

export interface BackboneReplicaOptions {
  name: BackboneName;
  inputShape: [number, number, number];
  seed: number;
  learningRate?: number;
}

/** A backbone in training mode (batch norm on batch statistics) with loss mean(features²): for speed tests. */
export function backboneReplica(options: unknown): Replica {
  const o = options as BackboneReplicaOptions;
  const model = buildBackbone({ name: o.name, inputShape: o.inputShape, seed: o.seed });
  return {
    variables: trainableVariables(model),
    loss: (batch) =>
      tf.tidy(() => tf.mean(tf.square(model.apply(batch.x!, { training: true }) as tf.Tensor)) as tf.Scalar),
    optimizer: tf.train.adam(o.learningRate ?? 1e-3),
    // Batch-norm moving statistics are variables too, outside `variables`.
    dispose: () => model.dispose(),
  };
}
