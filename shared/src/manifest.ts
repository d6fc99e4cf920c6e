// The model manifest: everything a client or the edge needs to know about a trained model.
import { z } from 'zod';
import { Box, Cell } from './geometry';
import { NoveltyCalibration } from './novelty';

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (SHA-256)');

export const InputSpec = z.object({
  height: z.number().int().min(1).max(4096),
  width: z.number().int().min(1).max(4096),
  channels: z.union([z.literal(1), z.literal(3)]),
  /** How an image of another aspect ratio reaches height×width. */
  resize: z.enum(['crop', 'letterbox', 'stretch']),
  /** Per-channel normalisation after scaling pixels to [0,1]: (x − mean) / std. */
  mean: z.array(z.number()).min(1).max(3),
  std: z.array(z.number().positive()).min(1).max(3),
});
export type InputSpec = z.infer<typeof InputSpec>;

export const FocalVariant = z.enum(['reference', 'paper']);
export type FocalVariant = z.infer<typeof FocalVariant>;

export const Architecture = z.object({
  backbone: z.string().min(1),
  /** M: prototypes in the shared pool. */
  prototypes: z.number().int().min(1),
  /** K: slots per class. */
  slotsPerClass: z.number().int().min(1),
  /** D: prototype depth. */
  depth: z.number().int().min(1),
  featureGrid: z.object({ height: z.number().int().min(1), width: z.number().int().min(1) }),
  focal: FocalVariant,
});
export type Architecture = z.infer<typeof Architecture>;

/** "That training patch": where a projected prototype came from. */
export const PrototypeSource = z.object({
  imageId: z.string().min(1),
  label: z.number().int().min(0),
  cell: Cell,
  box: Box,
});
export type PrototypeSource = z.infer<typeof PrototypeSource>;

export const SlotRef = z.object({ classIndex: z.number().int().min(0), slot: z.number().int().min(0) });
export type SlotRef = z.infer<typeof SlotRef>;

export const Prototype = z.object({
  id: z.number().int().min(0),
  /** Null before projection: the prototype is then a free vector, not yet a training patch. */
  source: PrototypeSource.nullable(),
  usedBy: z.array(SlotRef),
});
export type Prototype = z.infer<typeof Prototype>;

export const FileChecksum = z.object({
  path: z.string().min(1),
  bytes: z.number().int().min(0),
  sha256: Sha256Hex,
});

export const ModelManifest = z.object({
  format: z.literal('protopool-manifest/1'),
  /** SHA-256 of the weights: changes whenever the model's behaviour can. */
  version: Sha256Hex,
  name: z.string().min(1),
  createdAt: z.iso.datetime(),
  classes: z.array(z.string().min(1)).min(2),
  input: InputSpec,
  architecture: Architecture,
  /** The prototypes in use; unused ones are dropped after projection (compactness). */
  prototypes: z.array(Prototype),
  engine: z.string().min(1),
  metrics: z.record(z.string(), z.number()),
  training: z
    .object({
      command: z.string(),
      dataset: z.string(),
      epochsCompleted: z.number().int().min(0),
      phase: z.string(),
      config: z.record(z.string(), z.unknown()),
    })
    .optional(),
  files: z.array(FileChecksum),
  /** How near training images come to the prototypes; absent in models trained before it existed. */
  novelty: NoveltyCalibration.optional(),
});
export type ModelManifest = z.infer<typeof ModelManifest>;
