// Every field of TF.js's that this project reads or writes beyond its public API, in one place, checked.
import * as tf from '@tensorflow/tfjs';
import type { BatchNormalization } from '@tensorflow/tfjs-layers/dist/layers/normalization';

/*
 * TF.js 4.22 keeps these protected or private. Each accessor below names what it relies on, and
 * `checkTfjsInternals` exercises all of them on tiny objects (test/backend/tfjs-internals.test.ts runs it),
 * so an upgrade that moves one fails there, loudly and by name, not as wrong numbers in training.
 * kernels/lean-backprop.ts reaches into the engine's tape the same way and checks itself on install.
 */

/** The variable behind a layer weight (`LayerVariable.val`): what optimisers and gradients take. */
export function variableOf(weight: tf.LayerVariable): tf.Variable {
  return (weight as unknown as { val: tf.Variable }).val;
}

/** The variables behind a layer's (or model's) trainable weights. */
export function trainableVariables(layer: { trainableWeights: tf.LayerVariable[] }): tf.Variable[] {
  return layer.trainableWeights.map(variableOf);
}

/** AdamOptimizer's state: the running products β₁ᵗ, β₂ᵗ and the moments per variable (in `applyGradients`' order). */
export interface AdamState {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: ({ originalName: string; variable: tf.Variable } | undefined)[];
  accumulatedSecondMoment: ({ originalName: string; variable: tf.Variable } | undefined)[];
}

export function adamState(adam: tf.AdamOptimizer): AdamState {
  return adam as unknown as AdamState;
}

/** Sets AdamOptimizer's learning rate, which it reads on every step (protected, but mutable). */
export function setLearningRate(adam: tf.AdamOptimizer, lr: number): void {
  (adam as unknown as { learningRate: number }).learningRate = lr;
}

/** tfjs-layers' own class for `className`, from the serialisation registry (before a subclass replaces it). */
export function stockLayerClass<T>(className: string): T {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new Error(`tfjs changed: no layer class "${className}" in the serialisation registry`);
  return entry[0] as unknown as T;
}

/** A BatchNormalization layer's configuration and weights, as its own `call` reads them. */
export interface BatchNormState {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

export function batchNormState(layer: BatchNormalization | tf.layers.Layer): BatchNormState {
  return layer as unknown as BatchNormState;
}

/** A Conv2D layer's configuration and weights, as its own `call` reads them. */
export interface Conv2DState {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  activation: { getClassName(): string };
  strides: [number, number];
  padding: 'valid' | 'same' | 'causal';
  dataFormat: 'channelsLast' | 'channelsFirst';
  dilationRate: [number, number];
}

export function conv2dState(layer: tf.layers.Layer): Conv2DState {
  return layer as unknown as Conv2DState;
}

function expectField(what: string, ok: boolean): void {
  if (!ok) throw new Error(`tfjs changed: ${what}; gpu-backend/src/tfjs-internals.ts needs updating`);
}

/** Exercises every accessor above on tiny objects; throws naming the first that no longer holds. */
export async function checkTfjsInternals(): Promise<void> {
  const x = tf.ones([1, 4, 4, 2]);
  const conv = tf.layers.conv2d({
    filters: 3,
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    activation: 'relu',
  });
  const bn = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3 });
  const adam = tf.train.adam(0.1);
  try {
    tf.tidy(() => {
      bn.apply(conv.apply(x));
    });
    const [kernel] = trainableVariables(conv);
    expectField('LayerVariable.val is no longer a tf.Variable', kernel instanceof tf.Variable);

    const c = conv2dState(conv);
    expectField(
      'Conv2D keeps kernel/bias as LayerVariables',
      variableOf(c.kernel) === kernel && c.bias !== null,
    );
    expectField('Conv2D.activation.getClassName', c.activation.getClassName() === 'relu');
    expectField(
      'Conv2D strides/padding/dataFormat/dilationRate',
      c.strides[0] === 2 &&
        c.padding === 'same' &&
        c.dataFormat === 'channelsLast' &&
        c.dilationRate[0] === 1,
    );

    const b = batchNormState(bn);
    expectField(
      'BatchNormalization axis/momentum/epsilon/center/scale',
      b.axis === -1 && b.momentum === 0.9 && b.epsilon === 1e-3 && b.center && b.scale,
    );
    for (const w of ['gamma', 'beta', 'movingMean', 'movingVariance'] as const) {
      expectField(`BatchNormalization.${w}`, variableOf(b[w]) instanceof tf.Variable);
    }
    for (const name of ['Conv2D', 'BatchNormalization']) stockLayerClass(name);

    setLearningRate(adam, 0.5);
    expectField('AdamOptimizer.learningRate', adam.getConfig().learningRate === 0.5);
    tf.tidy(() => adam.applyGradients({ [kernel!.name]: tf.onesLike(kernel!) }));
    const s = adamState(adam);
    expectField(
      'AdamOptimizer.accBeta1/accBeta2',
      s.accBeta1 instanceof tf.Variable && s.accBeta2 instanceof tf.Variable,
    );
    expectField(
      'AdamOptimizer.accumulatedFirstMoment/SecondMoment',
      s.accumulatedFirstMoment[0]?.variable instanceof tf.Variable &&
        s.accumulatedSecondMoment[0]?.variable instanceof tf.Variable,
    );
  } finally {
    x.dispose();
    adam.dispose();
    for (const w of [...conv.weights, ...bn.weights]) w.dispose();
  }
}
