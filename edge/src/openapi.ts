// The OpenAPI document, generated from the shared zod schemas, and a self-contained docs page.
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import {
  ApiError,
  ClassifyQuery,
  ClassifyRequest,
  Explanation,
  ModelList,
  ModelManifest,
  ModelQuery,
  TENSOR_MEDIA_TYPE,
} from '@protopool/shared';
import { z } from 'zod';

const errors = Object.fromEntries(
  [
    [400, 'invalid input (the message names the field)'],
    [401, 'missing or unknown API key'],
    [413, 'body too large'],
    [415, 'unsupported media type'],
    [429, 'rate limited (see Retry-After)'],
    [503, 'backend unavailable'],
    [504, 'backend timed out'],
  ].map(([status, description]) => [
    status,
    { description, content: { 'application/json': { schema: ApiError } } },
  ]),
);

const notFound = (description: string) => ({
  description,
  content: { 'application/json': { schema: ApiError } },
});
/** A `?model=` naming no served model: the message lists the served ones. */
const UNKNOWN_MODEL = 'no model served under that name (the message lists the served ones)';

let cached: unknown;

export function openApiDocument(): unknown {
  if (cached) return cached;
  const r = new OpenAPIRegistry();
  r.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer' });
  r.registerPath({
    method: 'post',
    path: '/v1/classify',
    summary: 'Classify an image (or tensor) and explain the prediction with prototype parts',
    security: [{ apiKey: [] }],
    request: {
      // The schema both tiers parse the query with: the document cannot drift from it.
      query: ClassifyQuery,
      body: {
        content: {
          'image/jpeg': { schema: z.string().meta({ format: 'binary' }) },
          'image/png': { schema: z.string().meta({ format: 'binary' }) },
          'multipart/form-data': { schema: z.object({ image: z.string().meta({ format: 'binary' }) }) },
          'application/json': { schema: ClassifyRequest },
          [TENSOR_MEDIA_TYPE]: { schema: z.string().meta({ format: 'binary' }) },
        },
      },
    },
    responses: {
      200: {
        description: 'The explanation; X-Cache says HIT, MISS or BYPASS',
        content: { 'application/json': { schema: Explanation } },
      },
      ...errors,
      404: notFound(UNKNOWN_MODEL),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/explanations/{id}',
    summary: 'A cached explanation by its content id',
    security: [{ apiKey: [] }],
    // Ids address one model version's explanation already: no model choice here.
    request: {
      params: z.object({ id: z.string().regex(/^[0-9a-f]{64}$/) }),
      query: ClassifyQuery.omit({ model: true }),
    },
    responses: {
      200: { description: 'The explanation', content: { 'application/json': { schema: Explanation } } },
      404: { description: 'unknown id', content: { 'application/json': { schema: ApiError } } },
      ...errors,
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/models',
    summary: 'The models served here, each by name, and the default one (requests naming none get it)',
    responses: {
      200: { description: 'The model list', content: { 'application/json': { schema: ModelList } } },
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/model',
    summary: "A model's manifest (classes, input, prototypes, version); ?model=<name>, else the default",
    request: { query: ModelQuery },
    responses: {
      200: { description: 'The manifest', content: { 'application/json': { schema: ModelManifest } } },
      400: errors[400]!,
      404: notFound(UNKNOWN_MODEL),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/v1/prototypes/{id}/image',
    summary: "A prototype's source training patch (PNG); immutable when ?v=<that model's version>",
    request: {
      params: z.object({ id: z.string().regex(/^\d+$/) }),
      query: ModelQuery.extend({ v: z.string().optional() }),
    },
    responses: {
      200: {
        description: 'PNG',
        content: { 'image/png': { schema: z.string().meta({ format: 'binary' }) } },
      },
      400: errors[400]!,
      404: notFound(`no such prototype in that model, or ${UNKNOWN_MODEL}`),
    },
  });
  cached = new OpenApiGeneratorV31(r.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'ProtoPool edge API',
      version: '1',
      description: 'Interpretable image classification by prototype parts.',
    },
  });
  return cached;
}

export function docsPage(): string {
  const doc = openApiDocument() as { paths: Record<string, Record<string, { summary?: string }>> };
  const rows = Object.entries(doc.paths)
    .flatMap(([path, ops]) =>
      Object.entries(ops).map(
        ([m, op]) =>
          `<tr><td><code>${m.toUpperCase()}</code></td><td><code>${path}</code></td><td>${op.summary ?? ''}</td></tr>`,
      ),
    )
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ProtoPool API</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}td{padding:.3rem .6rem;border-bottom:1px solid #ddd}</style>
</head><body><h1>ProtoPool edge API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead><tbody>${rows}</tbody></table></body></html>`;
}
