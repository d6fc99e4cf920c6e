// Saving weights one tensor at a time: the bytes and specs tf.io writes, so tf.io (and older files) still read them.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { serialiseLayers } from '../../gpu-backend/src/io/model-files';
import { encodeTensors } from '../../gpu-backend/src/io/weights-encoding';
import { buildBackbone } from '../../gpu-backend/src/model/backbones';
import { seededTensor } from '../helpers/seeded-tensor';

describe('encodeTensors', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('writes what tf.io.encodeWeights writes, for every dtype a model or optimizer holds', async () => {
    const named = [
      { name: 'w', tensor: seededTensor([3, 2, 5], 1) },
      { name: 'step', tensor: tf.scalar(7) },
      { name: 'counts', tensor: tf.tensor1d([1, -2, 2147483647], 'int32') },
      { name: 'mask', tensor: tf.tensor1d([true, false, true], 'bool') },
      { name: 'empty', tensor: tf.zeros([0, 4]) },
    ];
    const want = await tf.io.encodeWeights(named);
    const got = encodeTensors(named);
    expect(got.specs).toEqual(want.specs);
    expect(Buffer.from(got.data)).toEqual(Buffer.from(new Uint8Array(want.data as ArrayBuffer)));
    // And it decodes to the same values.
    const back = tf.io.decodeWeights(got.data.slice().buffer, got.specs);
    expect(Array.from(back.counts!.dataSync())).toEqual([1, -2, 2147483647]);
    tf.dispose([...named.map((n) => n.tensor), ...Object.values(back)]);
  });

  it('refuses a dtype it cannot write, naming the weight', () => {
    const t = tf.complex([1], [2]);
    expect(() => encodeTensors([{ name: 'z', tensor: t }])).toThrow(
      'cannot encode weight "z": dtype complex64',
    );
    t.dispose();
  });

  it('serialiseLayers gives model.save’s model.json and weights.bin, byte for byte', async () => {
    const model = buildBackbone({ name: 'small-cnn', inputShape: [28, 28, 1], seed: 2 });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const ours = serialiseLayers(model);
    const json = JSON.parse(ours.json);
    expect(json.modelTopology).toEqual(saved!.modelTopology);
    expect(json.weightsManifest[0].weights).toEqual(saved!.weightSpecs);
    expect(json.format).toBe(saved!.format);
    expect(json.generatedBy).toBe(saved!.generatedBy);
    expect(Buffer.from(ours.weights)).toEqual(Buffer.from(new Uint8Array(saved!.weightData as ArrayBuffer)));
    model.dispose();
  });
});
