// The models a deployment serves: each under a name (`parts`, `fashion-mnist`), one of them the default.
//
// A client names a model with `?model=<name>` on /v1/classify, /v1/model and /v1/prototypes/…; without it the
// default model answers. Names are routing labels the operator chooses at `protopool serve --model
// name=dir`; a model's identity stays its version (the SHA-256 of its weights), so explanation ids and every
// cache key stay per model version whatever name a model is served under. GET /v1/models lists them.
import { z } from 'zod';
import { ProtocolError } from './errors';
import { InputSpec, type ModelManifest, Sha256Hex } from './manifest';

/** Lowercase letters, digits and inner hyphens, as a URL segment and a Prometheus label can carry as is. */
export const ModelName = z
  .string()
  .regex(
    /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/,
    'model names are 1–48 lowercase letters, digits or inner hyphens',
  );
export type ModelName = z.infer<typeof ModelName>;

/** `?model=` on any route that reads one model; absent means the default model. */
export const ModelQuery = z.object({ model: ModelName.optional() });

/** One served model at a glance: enough for a client to pick one and size its input. */
export const ModelSummary = z.object({
  name: ModelName,
  version: Sha256Hex,
  /** The manifest's descriptive name (`protopool-small-cnn-parts`). */
  title: z.string().min(1),
  dataset: z.string().nullable(),
  classes: z.array(z.string().min(1)).min(2),
  input: InputSpec,
  /** Prototypes in use, out of the pool's size. */
  prototypes: z.number().int().min(0),
  pool: z.number().int().min(1),
  metrics: z.record(z.string(), z.number()),
  /** Whether answers carry a calibrated novelty flag. */
  novelty: z.boolean(),
});
export type ModelSummary = z.infer<typeof ModelSummary>;

export const ModelList = z
  .object({
    /** The model that answers requests naming none. */
    default: ModelName,
    models: z.array(ModelSummary).min(1),
  })
  .refine((l) => l.models.some((m) => m.name === l.default), { message: 'the default model must be listed' })
  .refine((l) => new Set(l.models.map((m) => m.name)).size === l.models.length, {
    message: 'model names must be unique',
  });
export type ModelList = z.infer<typeof ModelList>;

export function modelSummary(name: ModelName, manifest: ModelManifest): ModelSummary {
  return {
    name,
    version: manifest.version,
    title: manifest.name,
    dataset: manifest.training?.dataset ?? null,
    classes: manifest.classes,
    input: manifest.input,
    prototypes: manifest.prototypes.length,
    pool: manifest.architecture.prototypes,
    metrics: manifest.metrics,
    novelty: manifest.novelty !== undefined,
  };
}

/**
 * `{model}` for a query or the SageMaker attributes, `{}` for the default model: a request naming none stays
 * byte for byte what it was before models had names.
 */
export function modelQuery(model: string | undefined): { model?: string } {
  return model === undefined ? {} : { model };
}

/** The model a request names, or undefined for the default; a bad name is a 400 naming the parameter. */
export function parseModelQuery(query: Record<string, string | undefined>): ModelName | undefined {
  const parsed = ModelQuery.safeParse({ model: query.model });
  if (!parsed.success) throw ProtocolError.fromZod(parsed.error, 'query');
  return parsed.data.model;
}

/** The 404 for a name no model is served under, listing the ones that are. */
export function unknownModel(name: string, served: readonly string[]): ProtocolError {
  return new ProtocolError(
    'not_found',
    `no model "${name.slice(0, 48)}" here; this deployment serves: ${served.join(', ')} (GET /v1/models)`,
  );
}
