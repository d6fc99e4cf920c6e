// A frozen backbone (warm-up, last-layer phase) runs before the gradient tape: the loss, its gradients and
// the shallow map are the very bits the whole forward under the tape gives, and the tape records none of the
// backbone's ops.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { gumbelNoise } from '../../gpu-backend/src/model/assignment';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';

let model: ProtoPoolModel;
let x: tf.Tensor4D;
let noise: tf.Tensor3D;

beforeAll(async () => {
  await initEngine('auto');
  model = ProtoPoolModel.create({
    backbone: 'small-cnn',
    inputShape: [28, 28, 1],
    seed: 4,
    classes: 3,
    prototypes: 6,
    slotsPerClass: 2,
    depth: 8,
    ...HEAD_DEFAULTS,
  });
  x = tf.randomUniform([4, 28, 28, 1], -1, 1, 'float32', 11) as tf.Tensor4D;
  noise = gumbelNoise([3, 6, 2], 7) as tf.Tensor3D;
});

afterAll(() => {
  tf.dispose([x, noise]);
  model.dispose();
});

const bits = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).buffer);

/** The warm-up's trained groups: the add-on, the prototypes and the slot logits (not the backbone). */
function trained(): tf.Variable[] {
  return [
    ...model.addOnVariables,
    model.head.prototypes as tf.Variable,
    model.head.slotLogits as tf.Variable,
  ];
}

/** Σ logits + Σ z (a loss reaching every trained variable), its gradients, and how many kernels the tape ran. */
function step(frozenFirst: boolean) {
  const mode = { kind: 'gumbel', scale: 2, noise } as const;
  let kernels = 0;
  const counted = tf.tidy(() => {
    const pre = frozenFirst ? model.backboneFeatures(x, true, 'pool1') : undefined;
    const profile = tf.variableGrads(() => {
      const r = pre
        ? { ...model.forwardFromBackbone(pre.f, mode, true), shallow: pre.shallow! }
        : model.forwardWithShallow(x, mode, true, 'pool1');
      return tf.add(tf.add(tf.sum(r.logits), tf.sum(r.z)), tf.mul(tf.mean(r.shallow), 0)) as tf.Scalar;
    }, trained());
    return profile;
  });
  // Kernels the tape records while the loss runs: what a backward pass would walk (and clone for).
  const recorded = async () => {
    const info = await tf.profile(() => {
      const pre = frozenFirst ? model.backboneFeatures(x, true) : undefined;
      const g = tf.variableGrads(() => {
        const r = pre ? model.forwardFromBackbone(pre.f, mode, true) : model.forward(x, mode, true);
        return tf.sum(r.logits) as tf.Scalar;
      }, trained());
      tf.dispose([pre?.f, g.value, ...Object.values(g.grads)]);
    });
    kernels = info.kernels.filter((k) => k.name === 'Identity').length;
  };
  return { counted, recorded, kernels: () => kernels };
}

describe('a frozen backbone before the tape', () => {
  it('gives the loss and every trained variable’s gradient bit for bit', () => {
    const start = tf.memory().numTensors;
    const whole = step(false).counted;
    const split = step(true).counted;
    expect(bits(split.value).equals(bits(whole.value))).toBe(true);
    expect(Object.keys(split.grads).sort()).toEqual(Object.keys(whole.grads).sort());
    for (const [name, g] of Object.entries(whole.grads))
      expect(bits(split.grads[name]!).equals(bits(g)), name).toBe(true);
    tf.dispose([whole.value, split.value, ...Object.values(whole.grads), ...Object.values(split.grads)]);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('leaves the backbone’s ops off the tape: far fewer saved-tensor clones', async () => {
    const whole = step(false);
    await whole.recorded();
    const split = step(true);
    await split.recorded();
    tf.dispose([
      whole.counted.value,
      split.counted.value,
      ...Object.values(whole.counted.grads),
      ...Object.values(split.counted.grads),
    ]);
    // The small CNN's convolutions, batch norms and activations each saved inputs or outputs under the tape.
    expect(whole.kernels()).toBeGreaterThan(split.kernels() + 10);
  });
});
