// The model switch step by step (#19), in process: which model a request holds, when the old one is freed,
// how reloads coalesce — the moments a process test under load can only hit by chance.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassifyOptions, tensor } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ModelRegistry } from '../../gpu-backend/src/server/model-registry';
import { trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const image = tensor('float32', [1, 28, 28, 1], seededArray(784, 11));
const options = ClassifyOptions.parse({});

let dirA: string;
let dirB: string;

beforeAll(async () => {
  const work = await mkdtemp(join(tmpdir(), 'pp-registry-'));
  dirA = await trainTinyModel(join(work, 'a'), 5);
  dirB = await trainTinyModel(join(work, 'b'), 6);
});

/** A registry serving `target()` that records its log lines. */
function registry(target: () => string) {
  const logs: Record<string, unknown>[] = [];
  const models = new ModelRegistry({
    locate: async () => target(),
    batching: { maxBatch: 4, maxWaitMs: 0, maxQueue: 64 },
    log: (e) => logs.push(e),
  });
  const named = (event: string) => logs.filter((e) => e.event === event);
  return { models, logs, named };
}

describe('ModelRegistry', () => {
  it('lets a request that arrived before the switch finish on its model, then frees that model', async () => {
    const base = tf.memory().numTensors;
    let target = dirA;
    const { models, named } = registry(() => target);
    const a = await models.start();
    const served = tf.memory().numTensors;

    const leave = models.enter();
    const held = models.service!;
    target = dirB;
    await models.reload();

    expect(models.service!.manifest.version).not.toBe(a.manifest.version);
    expect(named('model_switch')).toEqual([
      expect.objectContaining({ from: a.manifest.version, to: models.service!.manifest.version }),
    ]);
    // Still held: the request classifies on the model it started with.
    expect(held).toBe(a);
    expect((await held.classify(image, options)).modelVersion).toBe(a.manifest.version);
    await new Promise((r) => setTimeout(r, 50));
    expect(named('model_retired')).toEqual([]);

    leave();
    await vi.waitFor(() => expect(named('model_retired')).toHaveLength(1));
    expect(named('model_retired')[0]).toMatchObject({ version: a.manifest.version });
    expect(tf.memory().numTensors).toBe(served);
    await expect(held.classify(image, options)).rejects.toThrow(/disposed/i);

    await models.close();
    expect(tf.memory().numTensors).toBe(base);
  });

  it('coalesces reloads: one load at a time, and a load overtaken by a newer request is dropped', async () => {
    const base = tf.memory().numTensors;
    let target = dirB;
    const { models, named } = registry(() => target);
    const b = await models.start();

    target = dirA;
    const first = models.reload(); // reads A now and loads it…
    target = dirB;
    const second = models.reload(); // …while the operator points back at B
    expect(second).toBe(first);
    await first;

    expect(named('model_switch')).toEqual([]);
    expect(named('model_switch_superseded')).toEqual([expect.objectContaining({ dir: dirA })]);
    expect(named('model_unchanged')).toEqual([expect.objectContaining({ version: b.manifest.version })]);
    expect(models.service).toBe(b);

    await models.close();
    expect(tf.memory().numTensors).toBe(base);
  });

  it('keeps the current model when the new one cannot be located, with the reason logged', async () => {
    let target = dirA;
    const { models, named } = registry(() => target);
    const a = await models.start();
    target = join(dirA, 'no-such-dir');
    await models.reload();
    expect(models.service).toBe(a);
    expect(named('model_switch_failed')).toEqual([
      expect.objectContaining({ serving: a.manifest.version, error: expect.stringContaining('no-such-dir') }),
    ]);
    await models.close();
  });

  it('closing while a load runs lets it finish, then frees every model', async () => {
    const base = tf.memory().numTensors;
    let target = dirA;
    const { models, named } = registry(() => target);
    await models.start();
    target = dirB;
    void models.reload();
    await models.close();
    // Nothing outlives close(): the engine may go right after it.
    expect(named('model_switch')).toEqual([]);
    expect(named('model_switch_superseded')).toHaveLength(1);
    expect(models.service).toBeUndefined();
    expect(tf.memory().numTensors).toBe(base);
  });
});
