// Training configuration: the data's own defaults under a config file, merged field by field.
import { describe, expect, it } from 'vitest';
import { PARTS_TRAIN_DEFAULTS } from '../../gpu-backend/src/data/parts';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { mergeConfig, normalisationOf, TrainConfig } from '../../gpu-backend/src/train/config';
import { PRESETS, presetConfig } from '../../gpu-backend/src/train/presets';

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

describe('presets', () => {
  it.each(Object.keys(PRESETS))('%s is a valid configuration', (name) => {
    expect(TrainConfig.safeParse(presetConfig(name, 200)).success).toBe(true);
  });

  it("fills the paper's CUB ResNet-50 settings (PROTOPOOL.md, the authors' README command)", () => {
    const c = TrainConfig.parse(presetConfig('cub-resnet50-inat', 200));
    expect(c.model).toMatchObject({
      backbone: 'resnet50',
      prototypes: 202,
      slotsPerClass: 10,
      depth: 256,
      normalise: 'imagenet',
    });
    expect(c.epochs).toEqual({ warmup: 10, joint: 30, lastLayer: 25 });
    expect(c.lr).toEqual({
      backbone: 1e-4,
      addOn: 3e-3,
      prototypes: 3e-3,
      slotLogits: 3e-3,
      lastLayer: 1e-4,
    });
    expect([
      c.gumbelTime,
      c.gumbelMax,
      c.batchSize,
      c.offlineCopies,
      c.mixup === false ? 'off' : c.mixup?.alpha,
    ]).toEqual([30, 1000, 80, 30, 0.5]);
    expect(c.lrStep).toEqual({ every: 5, gamma: 0.1 });
    expect(normalisationOf(c.model)).toEqual({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  });

  it('gives Stanford Cars its own pool (M 195, D 128) and fine-tuning a pool that grows with the classes', () => {
    expect(TrainConfig.parse(presetConfig('cars-resnet50', 196)).model).toMatchObject({
      prototypes: 195,
      depth: 128,
    });
    expect(TrainConfig.parse(presetConfig('finetune-resnet50', 5)).model.prototypes).toBe(20);
    expect(TrainConfig.parse(presetConfig('finetune-resnet50', 100)).model.prototypes).toBe(102);
    expect(TrainConfig.parse(presetConfig('finetune-resnet50', 5)).mixup).toBe(false);
    expect(TrainConfig.parse(presetConfig('finetune-resnet50', 5))).toMatchObject({
      batchSize: 32,
      microBatch: 4,
    });
    // A config file switches off what a preset turns on.
    expect(TrainConfig.parse(mergeConfig(presetConfig('cub-resnet34', 200), { mixup: false })).mixup).toBe(
      false,
    );
  });

  it('normalises with the images’ statistics unless weights or a convention are given', () => {
    expect(normalisationOf({})).toBeUndefined();
    expect(normalisationOf({ weights: 'x.pth' })?.mean).toEqual([0.485, 0.456, 0.406]);
    expect(normalisationOf({ weights: 'x.pth', normalise: 'data' })).toBeUndefined();
    expect(normalisationOf({ normalise: { mean: [0.5], std: [0.2] } })).toEqual({ mean: [0.5], std: [0.2] });
  });
});
