// A local explanation: the prediction and, per slot of the explained classes, its evidence.
import { z } from 'zod';
import { Box, Cell } from './geometry';
import { PrototypeSource, Sha256Hex } from './manifest';
import { Novelty } from './novelty';

export const ClassScore = z.object({
  classIndex: z.number().int().min(0),
  label: z.string(),
  logit: z.number(),
  probability: z.number().min(0).max(1),
});
export type ClassScore = z.infer<typeof ClassScore>;

/** The activation map of a prototype over the feature grid, row-major. */
export const ActivationMap = z
  .object({
    height: z.number().int().min(1),
    width: z.number().int().min(1),
    data: z.array(z.number()),
  })
  .refine((m) => m.data.length === m.height * m.width, { message: 'data length must equal height × width' });
export type ActivationMap = z.infer<typeof ActivationMap>;

export const SlotEvidence = z.object({
  slot: z.number().int().min(0),
  prototypeId: z.number().int().min(0),
  assignmentWeight: z.number().min(0).max(1),
  similarity: z.number(),
  weight: z.number(),
  /** weight × similarity. */
  contribution: z.number(),
  peak: Cell,
  box: Box,
  activation: ActivationMap,
  source: PrototypeSource.nullable(),
});
export type SlotEvidence = z.infer<typeof SlotEvidence>;

export const ClassEvidence = z.object({
  classIndex: z.number().int().min(0),
  label: z.string(),
  logit: z.number(),
  slots: z.array(SlotEvidence),
  /** What other classes' slots add through the last layer, so Σ contributions + residual = logit. */
  residual: z.number(),
});
export type ClassEvidence = z.infer<typeof ClassEvidence>;

export const Explanation = z.object({
  /** sha256(model version ‖ input tensor bytes): the content address of this explanation. */
  id: Sha256Hex,
  modelVersion: Sha256Hex,
  prediction: ClassScore,
  topK: z.array(ClassScore).min(1),
  /** Empty when only a prediction was asked for. */
  classes: z.array(ClassEvidence),
  /** How unlike the training images the input is; absent when the model has no novelty calibration. */
  novelty: Novelty.optional(),
});
export type Explanation = z.infer<typeof Explanation>;

/** The whole model at a glance: every prototype, who uses it, which classes share it, compactness. */
export const GlobalExplanation = z.object({
  modelVersion: Sha256Hex,
  classes: z.array(z.string()),
  prototypes: z.array(
    z.object({
      id: z.number().int().min(0),
      source: PrototypeSource.nullable(),
      usedBy: z.array(z.object({ classIndex: z.number().int().min(0), slot: z.number().int().min(0) })),
      /** Distinct classes using it. */
      classes: z.array(z.number().int().min(0)),
    }),
  ),
  /** Prototypes used by two or more classes: the edges of the sharing graph. */
  sharing: z.array(
    z.object({ prototypeId: z.number().int().min(0), classes: z.array(z.number().int().min(0)).min(2) }),
  ),
  /** Pool prototypes no slot uses (dropped from the manifest after projection). */
  unused: z.array(z.number().int().min(0)),
  compactness: z.object({
    poolSize: z.number().int().min(0),
    prototypesUsed: z.number().int().min(0),
    slots: z.number().int().min(0),
    sharedPrototypes: z.number().int().min(0),
    meanClassesPerPrototype: z.number().min(0),
  }),
});
export type GlobalExplanation = z.infer<typeof GlobalExplanation>;
