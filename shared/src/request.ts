// What a client may ask of /v1/classify (and the backend of /invocations).
import { z } from 'zod';
import { ProtocolError } from './errors';
import { ModelQuery } from './models';
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

/** The same options from a query string (`?explain=false&topK=5`), for binary bodies, and the model asked for. */
export const ClassifyQuery = ModelQuery.extend({
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

/** The query's options, or a 400 naming the bad parameter (`Invalid query: topK: Too big…`). */
export function parseClassifyQuery(
  query: Record<string, string | undefined>,
): z.output<typeof ClassifyQuery> {
  const parsed = ClassifyQuery.safeParse(query);
  if (!parsed.success) throw ProtocolError.fromZod(parsed.error, 'query');
  return parsed.data;
}

/** The options a request asked for: the body's, then the query's on top, then the defaults. */
export function resolveOptions(
  body: Partial<ClassifyOptions>,
  query: z.output<typeof ClassifyQuery>,
): ClassifyOptions {
  const { model: _routing, ...asked } = query;
  const given = Object.entries(asked).filter(([, v]) => v !== undefined);
  return ClassifyOptions.parse({ ...body, ...Object.fromEntries(given) });
}

/** Options as the query parameters `parseClassifyQuery` reads back (what the edge sends its backend). */
export function optionsQuery(o: ClassifyOptions): Record<string, string> {
  return { explain: String(o.explain), topK: String(o.topK), explainTopK: String(o.explainTopK) };
}
