// Training configuration: the data's own defaults under a config file, merged field by field.
import { describe, expect, it } from 'vitest';
import { PARTS_TRAIN_DEFAULTS } from '../../gpu-backend/src/data/parts';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { mergeConfig, TrainConfig } from '../../gpu-backend/src/train/config';

describe('config over the data defaults', () => {
  it('merges objects field by field; the file wins, and values that are not objects replace', () => {
    const base = { model: { prototypes: 20, depth: 16 }, epochs: { joint: 14 }, augment: { flip: 0.5 } };
    const file = { model: { depth: 64 }, augment: false, seed: 3 };
    expect(mergeConfig(base, file)).toEqual({
      model: { prototypes: 20, depth: 64 },
      epochs: { joint: 14 },
      augment: false,
      seed: 3,
    });
    expect(mergeConfig(base, {})).toEqual(base);
  });

  it('keeps a "__proto__" key a key, which the strict schema then names', () => {
    const file = JSON.parse('{"__proto__": {"polluted": true}, "seed": 2}');
    const merged = mergeConfig({ seed: 1 }, file) as Record<string, unknown>;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const parsed = TrainConfig.safeParse(merged);
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toContain('__proto__');
  });

  it('gives the generated parts data its schedule unless a config file says otherwise', async () => {
    const ds = await openDataset('parts:3?size=32&classes=3&train=2&test=1');
    expect(ds.trainDefaults).toEqual(PARTS_TRAIN_DEFAULTS);
    const plain = TrainConfig.parse(mergeConfig(ds.trainDefaults, {}));
    expect([plain.model.slotsPerClass, plain.epochs.joint, plain.lrStep.every]).toEqual([4, 14, 10]);
    // Untouched fields keep the global defaults.
    expect([plain.model.prototypes, plain.epochs.warmup, plain.lrStep.gamma]).toEqual([40, 1, 0.1]);
    const mine = TrainConfig.parse(mergeConfig(ds.trainDefaults, { epochs: { joint: 3 } }));
    expect([mine.epochs.joint, mine.epochs.warmup, mine.lrStep.every]).toEqual([3, 1, 10]);
    expect((await openDataset('fashion-mnist:embedded')).trainDefaults).toBeUndefined();
  });
});
