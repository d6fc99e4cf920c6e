// The catalog of served models (#18), in process: one registry per name, loading all, holding all for a
// request, switching one, and every tensor freed at close — what a process test can only see from outside.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassifyOptions, tensor } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { readManifest } from '../../gpu-backend/src/io/model-files';
import { type CatalogModel, ModelCatalog } from '../../gpu-backend/src/server/model-catalog';
import { ROOT, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const PARTS = join(ROOT, 'models', 'parts');
const FASHION = join(ROOT, 'models', 'fashion-mnist');
const options = ClassifyOptions.parse({ topK: 2 });
const batching = { maxBatch: 4, maxWaitMs: 0, maxQueue: 64 };

function catalog(models: CatalogModel[], defaultModel?: string) {
  const logs: Record<string, unknown>[] = [];
  const c = new ModelCatalog({
    models,
    ...(defaultModel === undefined ? {} : { defaultModel }),
    batching,
    log: (e) => logs.push(e),
  });
  return { c, logs, named: (event: string) => logs.filter((e) => e.event === event) };
}
const at = (name: string, dir: string): CatalogModel => ({ name, locate: async () => dir });

beforeAll(async () => {
  await initEngine('wasm');
});

describe('ModelCatalog', () => {
  it('loads every model under its name, classifies on each, and frees every tensor at close', async () => {
    const base = tf.memory().numTensors;
    const { c, named } = catalog([at('parts', PARTS), at('fashion-mnist', FASHION)], 'fashion-mnist');
    expect(c.service('parts')).toBeUndefined();
    await c.start();
    const [parts, fashion] = [await readManifest(PARTS), await readManifest(FASHION)];
    expect(c.defaultName).toBe('fashion-mnist');
    expect(c.service('parts')!.manifest.version).toBe(parts.version);
    expect(c.service('fashion-mnist')!.manifest.version).toBe(fashion.version);
    expect(c.service('cub')).toBeUndefined();
    expect(named('model_loaded').map((e) => [e.name, e.version])).toEqual(
      expect.arrayContaining([
        ['parts', parts.version],
        ['fashion-mnist', fashion.version],
      ]),
    );
    expect(named('models_ready')).toEqual([
      expect.objectContaining({
        default: 'fashion-mnist',
        models: { parts: parts.version, 'fashion-mnist': fashion.version },
      }),
    ]);
    expect(tf.memory().numTensors).toBeGreaterThan(base);
    const p = await c
      .service('parts')!
      .classify(tensor('float32', [1, 64, 64, 3], seededArray(64 * 64 * 3, 1)), options);
    const f = await c
      .service('fashion-mnist')!
      .classify(tensor('float32', [1, 28, 28, 1], seededArray(784, 1)), options);
    expect([p.modelVersion, f.modelVersion]).toEqual([parts.version, fashion.version]);
    await c.close();
    expect(tf.memory().numTensors).toBe(base);
  });

  it('rejects start naming the model that cannot load, and frees the ones that did', async () => {
    const base = tf.memory().numTensors;
    const broken = await mkdtemp(join(tmpdir(), 'pp-catalog-broken-'));
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'manifest.json'), '{"format": "nope"}');
    const { c, named } = catalog([at('fashion-mnist', FASHION), at('broken', broken)]);
    await expect(c.start()).rejects.toThrow(/^model "broken": /);
    expect(named('models_ready')).toEqual([]);
    await c.close();
    expect(tf.memory().numTensors).toBe(base);
  });

  it('refuses a name given twice and a default it does not serve', () => {
    expect(() => catalog([at('a', FASHION), at('a', PARTS)])).toThrow('model name "a" is given twice');
    expect(() => catalog([at('a', FASHION)], 'b')).toThrow('default model "b" is not served (a)');
  });

  describe('switching one of two models', () => {
    let dirA: string;
    let dirB: string;
    beforeAll(async () => {
      const work = await mkdtemp(join(tmpdir(), 'pp-catalog-'));
      dirA = await trainTinyModel(join(work, 'a'), 5);
      dirB = await trainTinyModel(join(work, 'b'), 6);
    });

    it('reloads only the changed model; a request holds both models current at its arrival', async () => {
      const base = tf.memory().numTensors;
      let target = dirA;
      const { c, named } = catalog([
        { name: 'tiny', locate: async () => target },
        at('fashion-mnist', FASHION),
      ]);
      await c.start();
      const a = c.service('tiny')!;
      const fashion = c.service('fashion-mnist')!;
      const leave = c.enter();
      target = dirB;
      await c.reload();
      expect(c.service('tiny')).not.toBe(a);
      expect(c.service('tiny')!.manifest.version).toBe((await readManifest(dirB)).version);
      expect(c.service('fashion-mnist')).toBe(fashion);
      expect(named('model_switch').map((e) => e.name)).toEqual(['tiny']);
      expect(named('model_unchanged').map((e) => e.name)).toEqual(['fashion-mnist']);
      // The request that arrived before the switch still holds model A: it is not freed yet.
      await new Promise((r) => setTimeout(r, 50));
      expect(named('model_retired')).toEqual([]);
      const held = await a.classify(tensor('float32', [1, 28, 28, 1], seededArray(784, 2)), options);
      expect(held.modelVersion).toBe(a.manifest.version);
      leave();
      for (let i = 0; i < 100 && named('model_retired').length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(named('model_retired')).toEqual([
        expect.objectContaining({ name: 'tiny', version: a.manifest.version }),
      ]);
      await c.close();
      expect(tf.memory().numTensors).toBe(base);
    });
  });
});
