// Named training recipes (`train --preset`): the paper's published runs, and fine-tuning on your own photos.
//
// The published settings are those of the authors' README commands and main.py (gmum/ProtoPool): Adam
// with --lr 1e-3, so the backbone trains at lr/10 = 1e-4 (wd 1e-3) and the add-on, prototypes and slot
// logits at 3·lr = 3e-3; 10 warm-up epochs with the backbone frozen; joint epochs with step decay ×0.1 every
// 5; the Gumbel scale reaching 1000 after 30 epochs; mixup (α 0.5); batch 80; the last layer fine-tuned
// afterwards (25 epochs, PROTOPOOL.md); 224 px ImageNet-normalised inputs cropped to the bird's or car's
// box (the `cub:` and `cars:` loaders' default) and augmented offline ×30 as ProtoPNet's img_aug.py does.
// A config file and flags override any field.

export interface Preset {
  /** One line for `--help` and logs. */
  description: string;
  /** The checkpoint the recipe starts from (what to pass to --weights); undefined: trains from scratch. */
  checkpoint?: string;
  /** What the paper reports for this recipe, for the README and the start log. */
  published?: string;
  /** The recipe, as a partial config (the data's own defaults sit beneath it). */
  config: (classes: number) => Record<string, unknown>;
}

const published = (o: { prototypes: number; depth: number; backbone: string }) => ({
  seed: 1,
  model: {
    backbone: o.backbone,
    prototypes: o.prototypes,
    slotsPerClass: 10,
    depth: o.depth,
    normalise: 'imagenet',
  },
  batchSize: 80,
  epochSize: 0,
  epochs: { warmup: 10, joint: 30, lastLayer: 25 },
  gumbelTime: 30,
  gumbelMax: 1000,
  lr: { backbone: 1e-4, addOn: 3e-3, prototypes: 3e-3, slotLogits: 3e-3, lastLayer: 1e-4 },
  weightDecay: { backbone: 1e-3, addOn: 1e-3 },
  lrStep: { every: 5, gamma: 0.1 },
  mixup: { alpha: 0.5 },
  offlineCopies: 30,
});

export const PRESETS: Record<string, Preset> = {
  'cub-resnet50-inat': {
    description: 'CUB-200-2011, ResNet-50 pretrained on iNaturalist (the paper: 85.5%)',
    checkpoint: "BBN.iNaturalist2017.res50.180epoch.best_model.pth (the authors' iNaturalist ResNet-50)",
    published: '85.5% test accuracy (ProtoPool, CUB-200-2011, ResNet-50 iNat)',
    config: () => published({ backbone: 'resnet50', prototypes: 202, depth: 256 }),
  },
  'cub-resnet34': {
    description: 'CUB-200-2011, ResNet-34 pretrained on ImageNet (the paper: 80.3%)',
    checkpoint: "torchvision's resnet34-333f7ec4.pth, the file the authors' code loads",
    published: '80.3% test accuracy (ProtoPool, CUB-200-2011, ResNet-34)',
    config: () => published({ backbone: 'resnet34', prototypes: 202, depth: 256 }),
  },
  'cars-resnet50': {
    description: 'Stanford Cars, ResNet-50 pretrained on ImageNet (the paper: 88.9%)',
    checkpoint: "torchvision's resnet50-19c8e357.pth, the file the authors' code loads",
    published: '88.9% test accuracy (ProtoPool, Stanford Cars, ResNet-50)',
    config: () => published({ backbone: 'resnet50', prototypes: 195, depth: 128 }),
  },
  'finetune-resnet50': {
    description: 'your own photos: an ImageNet ResNet-50 fine-tuned with a short schedule a CPU can run',
    checkpoint: "torchvision's resnet50-19c8e357.pth, or any ResNet-50 state dict",
    // The published recipe, shortened (a few thousand photos, not 6k×30): online augmentation instead of
    // ×30 offline copies, 5 slots per class, a pool that grows with the classes (CUB's ~1 per class, at
    // least 4 per slot so that classes can share).
    config: (classes) => {
      const base = published({ backbone: 'resnet50', prototypes: Math.max(classes + 2, 20), depth: 128 });
      return {
        ...base,
        model: { ...base.model, slotsPerClass: 5 },
        // wasm's 4 GB heap holds a ResNet-50 training step at 224 px up to 5 images: batches of 32 as chunks of 4.
        batchSize: 32,
        microBatch: 4,
        epochs: { warmup: 2, joint: 10, lastLayer: 3 },
        gumbelTime: 8,
        offlineCopies: 0,
        mixup: false,
        augment: true,
      };
    },
  },
};

/** A preset's recipe for `classes` classes; an unknown name lists the known ones. */
export function presetConfig(name: string, classes: number): Record<string, unknown> {
  const preset = PRESETS[name];
  if (!preset) throw new Error(`unknown preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`);
  return preset.config(classes);
}
