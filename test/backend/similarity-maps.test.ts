// One way to similarity maps: ProtoPoolModel.similarityMaps / forwardWithMaps, and mapOf to read one out.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';
import { mapOf } from '../../gpu-backend/src/model/similarity';
import { seededTensor } from '../helpers/seeded-tensor';

describe('similarity maps', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('mapOf reads prototype p of image b out of flat [B,H,W,M] data, cells in row-major order', () => {
    // value = 100·b + 10·cell + p, for B 2, H·W 4, M 3.
    const flat = Array.from({ length: 2 * 4 * 3 }, (_, i) => {
      const p = i % 3;
      const cell = Math.floor(i / 3) % 4;
      const b = Math.floor(i / 12);
      return 100 * b + 10 * cell + p;
    });
    expect(mapOf(flat, 1, 2, 4, 3)).toEqual([102, 112, 122, 132]);
    expect(mapOf(flat, 0, 0, 4, 3)).toEqual([0, 10, 20, 30]);
  });

  it('are log((d + 1)/(d + ε)) of each cell’s squared distance to each prototype, the same from either entry', () => {
    const start = tf.memory().numTensors;
    const model = ProtoPoolModel.create({
      ...HEAD_DEFAULTS,
      classes: 2,
      prototypes: 3,
      slotsPerClass: 2,
      depth: 4,
      backbone: 'small-cnn',
      inputShape: [28, 28, 1],
      seed: 2,
    });
    const x = seededTensor([2, 28, 28, 1], 3, -2, 2) as tf.Tensor4D;
    const maps = model.similarityMaps(x);
    const both = model.forwardWithMaps(x);
    expect(maps.shape).toEqual([2, 7, 7, 3]);
    expect(both.maps.dataSync()).toEqual(maps.dataSync());

    // Independently, in JS doubles from the latents and prototypes read back.
    const z = tf.tidy(() => model.latents(x));
    const zs = z.dataSync();
    const ps = model.head.prototypes.dataSync();
    const eps = model.config.eps;
    const got = maps.dataSync();
    let worst = 0;
    for (let row = 0; row < 2 * 49; row++) {
      for (let p = 0; p < 3; p++) {
        let d = 0;
        for (let k = 0; k < 4; k++) d += (zs[row * 4 + k]! - ps[p * 4 + k]!) ** 2;
        const want = Math.log((d + 1) / (d + eps));
        worst = Math.max(worst, Math.abs(got[row * 3 + p]! - want) / Math.max(1, Math.abs(want)));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([x, z, maps, ...Object.values(both)]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
