// The training configuration: a zod schema (so a config file's mistakes are named by field) and defaults.
import { FocalVariant } from '@protopool/shared';
import { z } from 'zod';
import type { Normalisation } from '../data/image-split';

const Rate = z.number().min(0).max(10);

export const TrainConfig = z
  .object({
    seed: z.number().int().min(0).default(1),
    model: z
      .object({
        backbone: z.string().min(1).default('small-cnn'),
        /** A pretrained TF.js layers model (model.json) to use as the backbone, cut at `layer`. */
        pretrained: z.object({ path: z.string().min(1), layer: z.string().min(1) }).optional(),
        /**
         * A PyTorch checkpoint (.pth/.pt from torch.save, or .safetensors) of a ResNet for the `backbone`:
         * torchvision's keys, the ProtoPool authors' iNaturalist ResNet-50, or either under one prefix.
         */
        weights: z.string().min(1).optional(),
        /** ResNets: stages kept (torchvision layer1…layer4); fewer gives a finer grid on small images. */
        stages: z.number().int().min(1).max(4).default(4),
        /**
         * Input normalisation: the training images' own statistics ('data'), ImageNet's (the convention of
         * torchvision's and the ProtoPool authors' checkpoints), or explicit values. Default: 'imagenet'
         * with `weights`, else 'data'. The manifest records the values, so the backend and edge match.
         */
        normalise: z
          .union([
            z.enum(['data', 'imagenet']),
            z.object({
              mean: z.array(z.number()).min(1).max(3),
              std: z.array(z.number().positive()).min(1).max(3),
            }),
          ])
          .optional(),
        prototypes: z.number().int().min(1).max(10_000).default(40),
        slotsPerClass: z.number().int().min(1).max(100).default(3),
        depth: z.number().int().min(1).max(4096).default(32),
        focal: FocalVariant.default('reference'),
        /**
         * The shallow backbone layer the feature-alignment loss (`loss.align`) compares the latents with;
         * default: the small CNN's first pool, a ResNet's stem.
         */
        alignLayer: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    batchSize: z.number().int().min(1).max(4096).default(64),
    /**
     * Gradient accumulation: each batch runs as chunks of at most this many images whose gradients are summed
     * before one optimizer step, so a batch larger than the engine's memory (wasm's 4 GB heap holds a ResNet-50
     * step at 224 px up to 5 images) keeps its size. Batch norm sees each chunk's statistics. 0: whole batches.
     */
    microBatch: z.number().int().min(0).max(4096).default(0),
    /**
     * Images per epoch, drawn afresh (seeded) from the whole training split each epoch, so an epoch has
     * the same cost on the 10k embedded subset and on the full 60k set. 0 = the whole split.
     */
    epochSize: z.number().int().min(0).default(10_000),
    /** Test images evaluated after each epoch (monitoring); the final evaluation uses the whole split. */
    monitorSize: z.number().int().min(1).default(2_000),
    epochs: z
      .object({
        warmup: z.number().int().min(0).default(1),
        joint: z.number().int().min(0).default(10),
        lastLayer: z.number().int().min(0).default(2),
      })
      .strict()
      .prefault({}),
    /** Epochs over which the Gumbel scale anneals to its maximum (the published runs: 30 of ~40). */
    gumbelTime: z.number().int().min(0).default(6),
    /**
     * The Gumbel scale's maximum (published: 1000). What matters is scale × the spread of the slot logits:
     * their Xavier init spreads wider for a small pool (σ 0.095 at 40×4 slots against 0.022 for CUB's
     * 202×10), so at 1000 a small model's assignment is one-hot within its first steps and never learns.
     */
    gumbelMax: z.number().positive().default(1000),
    lr: z
      .object({
        // The published runs fine-tune a pretrained ResNet at 1e-4; a backbone trained from scratch needs more.
        backbone: Rate.default(1e-3),
        addOn: Rate.default(3e-3),
        prototypes: Rate.default(3e-3),
        slotLogits: Rate.default(3e-3),
        lastLayer: Rate.default(1e-4),
      })
      .strict()
      .prefault({}),
    weightDecay: z
      .object({ backbone: Rate.default(1e-3), addOn: Rate.default(1e-3) })
      .strict()
      .prefault({}),
    /** Step decay of the joint phase: lr × gamma every `every` joint epochs. */
    lrStep: z
      .object({ every: z.number().int().min(1).default(5), gamma: z.number().min(0).max(1).default(0.1) })
      .strict()
      .prefault({}),
    loss: z
      .object({
        clst: z.number().default(0.8),
        sep: z.number().default(-0.08),
        l1: z.number().default(1e-4),
        ortho: z.number().default(1),
        /**
         * Shallow–deep feature alignment (Huang et al. 2023; not in ProtoPool): weight of the L1 gap between
         * the latents' cell-similarity matrix and the shallow layer's. 0 = off, as published.
         */
        align: z.number().min(0).default(0),
      })
      .strict()
      .prefault({}),
    /**
     * On-line augmentation of training batches (flip, rotation, shear, zoom, shift, colour jitter; part
     * locations move with the pixels). `true` takes the defaults; off for Fashion-MNIST, whose garments
     * are centred and upright. `offlineCopies`: the published runs' offline ×30 augmentation.
     */
    augment: z
      .union([
        z.boolean(),
        z
          .object({
            flip: z.number().min(0).max(1),
            rotate: z.number().min(0).max(180),
            shear: z.number().min(0).max(60),
            zoom: z.tuple([z.number().positive(), z.number().positive()]),
            aspect: z.number().min(0).max(1),
            translate: z.number().min(0).max(1),
            brightness: z.number().min(0).max(1),
            contrast: z.number().min(0).max(1),
            saturation: z.number().min(0).max(1),
          })
          .partial()
          .strict(),
      ])
      .default(false),
    offlineCopies: z.number().int().min(0).max(100).default(0),
    /**
     * Slot revival (not in ProtoPool): at the end of each joint epoch before the learning-rate step, a class
     * slot whose prototype's focal similarity is no higher on its class than elsewhere (gap < `minGap`,
     * measured on `images` training images) takes the class's best unheld prototype. A weak slot left over
     * gets a prototype no slot uses, seeded from the patch of the class's first `seedImages` images that best
     * tells the class apart among those its prototypes do not already look at (0: never). Off by default.
     */
    revive: z
      .object({
        // On the parts data informative slots measure 1–4; at 0.5, slots at 0.5–1 that peak on no part stayed
        // (lower consistency on every seed; NOTES.md, "Slot revival").
        minGap: z.number().min(0).default(1),
        images: z.number().int().min(1).default(1000),
        seedImages: z.number().int().min(0).default(4),
        /**
         * The first joint epoch (0-based) that seeds. Earlier, most slots are weak only for want of training:
         * seeding from 0 on the parts data spent 7–10 prototypes at once and cost accuracy (NOTES.md).
         */
        seedFrom: z.number().int().min(0).default(3),
      })
      .strict()
      .optional(),
    /** Mixup (λ ~ Beta(α, α)) as in the published runs; off by default for short schedules. */
    // `false` switches off the mixup a preset turns on.
    mixup: z.union([z.literal(false), z.object({ alpha: z.number().positive() }).strict()]).optional(),
    limits: z
      .object({ train: z.number().int().min(1).optional(), test: z.number().int().min(1).optional() })
      .strict()
      .prefault({}),
  })
  .strict();

export type TrainConfig = z.infer<typeof TrainConfig>;

/** ImageNet's per-channel statistics, as torchvision's `transforms.Normalize` and the authors' code use them. */
export const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** The fixed normalisation a config asks for, or undefined for the training images' statistics. */
export function normalisationOf(model: {
  weights?: string | undefined;
  normalise?: TrainConfig['model']['normalise'];
}): Normalisation | undefined {
  const n = model.normalise ?? (model.weights ? 'imagenet' : 'data');
  return n === 'data' ? undefined : n === 'imagenet' ? IMAGENET : n;
}

const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A config file over the data's defaults: objects merge field by field, anything else replaces. */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isPlain(base) || !isPlain(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    // defineProperty: a "__proto__" key stays a key (which the strict schema then refuses).
    Object.defineProperty(out, k, {
      value: Object.hasOwn(base, k) ? mergeConfig(base[k], v) : v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

export function totalEpochs(c: TrainConfig): number {
  return c.epochs.warmup + c.epochs.joint + c.epochs.lastLayer;
}

export type Phase = 'warmup' | 'joint' | 'lastLayer';

export function phaseOf(c: TrainConfig, epoch: number): Phase {
  if (epoch < c.epochs.warmup) return 'warmup';
  if (epoch < c.epochs.warmup + c.epochs.joint) return 'joint';
  return 'lastLayer';
}
