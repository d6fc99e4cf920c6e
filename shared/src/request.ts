// What a client may ask of /v1/classify (and the backend of /invocations).
import { z } from 'zod';
import { TensorJson } from './wire';

export const MAX_TOP_K = 20;

export const ClassifyOptions = z.object({
  /** false: prediction and top-k only (no slot evidence). */
  explain: z.boolean().default(true),
  topK: z.number().int().min(1).max(MAX_TOP_K).default(3),
  /** Evidence for every top-k class, not only the predicted one. */
  explainTopK: z.boolean().default(false),
});
export type ClassifyOptions = z.infer<typeof ClassifyOptions>;

/** The same options from a query string (`?explain=false&topK=5`), for binary bodies. */
export const ClassifyQuery = z.object({
  explain: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .optional(),
  topK: z.coerce.number().int().min(1).max(MAX_TOP_K).optional(),
  explainTopK: z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .optional(),
});

export const ImageMediaType = z.enum(['image/jpeg', 'image/png']);
export type ImageMediaType = z.infer<typeof ImageMediaType>;

export const EncodedImage = z.object({
  mediaType: ImageMediaType,
  /** The encoded file, base64. */
  data: z.string().min(1),
});

/** JSON body: exactly one of an encoded image or a tensor, plus options. */
export const ClassifyRequest = z
  .object({
    image: EncodedImage.optional(),
    tensor: TensorJson.optional(),
    options: ClassifyOptions.prefault({}),
  })
  .strict()
  .refine((r) => (r.image === undefined) !== (r.tensor === undefined), {
    message: 'give exactly one of "image" or "tensor"',
  });
export type ClassifyRequest = z.infer<typeof ClassifyRequest>;
