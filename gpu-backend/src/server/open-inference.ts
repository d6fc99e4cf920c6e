// The Open Inference Protocol (KServe v2) beside the SageMaker contract: health, metadata, JSON-tensor infer.
import { readFileSync } from 'node:fs';
import {
  ClassifyOptions,
  Explanation,
  elementCount,
  HTTP_STATUS,
  ProtocolError,
  TensorFormatError,
  tensor,
  zodIssueLines,
} from '@protopool/shared';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { QueueFullError } from './batcher';
import { allLoaded, type ServedModels } from './model-catalog';
import type { ModelService } from './model-service';
import type { RequestVars } from './request-log';

/** The one request variable these routes set: the model's name for the request's log line. */
type Env = { Variables: Pick<RequestVars, 'model'> };

/**
 * The default model's alias beside every served model's own name: one name whatever model is loaded, so
 * clients and KServe routes survive a model swap (the version changes) and a second model being added.
 */
export const MODEL_NAME = 'protopool';
export const INPUT_NAME = 'input';
export const OUTPUT_NAMES = ['logits', 'probabilities', 'explanation'] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];
/** "<project>_<format>", as the protocol's Platforms section asks. */
export const PLATFORM = 'tensorflowjs_protopool';

const SERVER_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

// The protocol's parameter values are strings, numbers or booleans; other servers' clients send objects too
// (MLServer's "headers"), so values are not checked here, only the ones we read.
const Parameters = z.record(z.string(), z.unknown());

export const InferenceRequest = z.object({
  id: z.string().optional(),
  parameters: Parameters.optional(),
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().min(0)),
        datatype: z.string(),
        parameters: Parameters.optional(),
        // Flat or nested ("Tensor Data"): flattened and checked against the shape below.
        data: z.array(z.unknown()),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: Parameters.optional() })).optional(),
});
export type InferenceRequest = z.infer<typeof InferenceRequest>;

export const ResponseOutput = z.object({
  name: z.string(),
  shape: z.array(z.number().int().min(0)),
  datatype: z.enum(['FP32', 'BYTES']),
  data: z.array(z.union([z.number(), z.string()])),
});
export type ResponseOutput = z.infer<typeof ResponseOutput>;

export const InferenceResponse = z.object({
  model_name: z.string(),
  model_version: z.string(),
  id: z.string().optional(),
  outputs: z.array(ResponseOutput),
});
export type InferenceResponse = z.infer<typeof InferenceResponse>;

const MetadataTensor = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });
export const ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(MetadataTensor),
  outputs: z.array(MetadataTensor),
});
export type ModelMetadata = z.infer<typeof ModelMetadata>;

export interface OpenInferenceOptions {
  /** The models served (each is `/v2/models/<name>`; `protopool` is the default's alias). */
  models: ServedModels;
  engine: string;
  /** Seconds a client should wait before retrying when the queue is full. */
  retryAfterSeconds?: number;
  log?: (event: Record<string, unknown>) => void;
}

/**
 * Routes that need no signature: health, server and model metadata and readiness are read-only, and
 * Kubernetes probes cannot sign. Inference (POST) is signed like /invocations.
 */
export function isOpenInferenceProbe(method: string, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && (path === '/v2' || path.startsWith('/v2/'));
}

/** The protocol's error body: `{"error": "<message>"}` (not the /v1 ApiError shape). */
function oipError(c: Context, status: number, message: string) {
  return c.json({ error: message }, status as 400);
}

export function modelMetadata(s: ModelService, name: string = MODEL_NAME): ModelMetadata {
  const [h, w, ch] = s.inputShape;
  const classes = s.manifest.classes.length;
  return {
    name,
    versions: [s.manifest.version],
    platform: PLATFORM,
    // -1: the batch dimension varies ("Variable-size dimensions are specified as -1").
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, h, w, ch] }],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, classes] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, classes] },
      { name: 'explanation', datatype: 'BYTES', shape: [-1] },
    ],
  };
}

/** The request's images as model inputs, one Float32Array each; every refusal names what was wrong. */
function readInputs(request: InferenceRequest, s: ModelService): Float32Array[] {
  const [h, w, ch] = s.inputShape;
  if (request.inputs.length !== 1)
    throw new ProtocolError(
      'bad_request',
      `expected 1 input ("${INPUT_NAME}"), got ${request.inputs.length}`,
    );
  const input = request.inputs[0]!;
  if (input.name !== INPUT_NAME)
    throw new ProtocolError(
      'bad_request',
      `unknown input "${input.name.slice(0, 40)}"; expected "${INPUT_NAME}"`,
    );
  if (input.datatype !== 'FP32')
    throw new ProtocolError(
      'bad_request',
      `input "${INPUT_NAME}" must be FP32, got ${input.datatype.slice(0, 20)}`,
    );
  const { shape } = input;
  const want = `[-1, ${h}, ${w}, ${ch}]`;
  if (shape.length !== 4 || shape[1] !== h || shape[2] !== w || shape[3] !== ch || shape[0]! < 1)
    throw new ProtocolError(
      'bad_request',
      `input shape must be ${want} (the normalised image), got [${shape.join(', ')}]`,
    );
  const batch = shape[0]!;
  // One request is at most one forward pass: a larger batch would only queue behind itself.
  const max = s.batcher.options.maxBatch;
  if (batch > max)
    throw new ProtocolError('bad_request', `batch of ${batch} exceeds this server's largest batch (${max})`);
  const flat = input.data.flat(Number.POSITIVE_INFINITY as 1);
  if (flat.length !== elementCount(shape))
    throw new ProtocolError(
      'bad_request',
      `shape [${shape.join(', ')}] holds ${elementCount(shape)} elements but data has ${flat.length}`,
    );
  const all = new Float32Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new ProtocolError(
        'bad_request',
        `data element ${i} is ${JSON.stringify(v)?.slice(0, 20)}; FP32 elements must be finite numbers`,
      );
    all[i] = v;
  }
  const size = h * w * ch;
  return Array.from({ length: batch }, (_, b) => all.subarray(b * size, (b + 1) * size));
}

/** Which outputs to return, in the order asked ("if not specified all outputs … will be returned"). */
function requestedOutputs(request: InferenceRequest): OutputName[] {
  if (!request.outputs) return [...OUTPUT_NAMES];
  const names: OutputName[] = [];
  for (const { name } of request.outputs) {
    if (!(OUTPUT_NAMES as readonly string[]).includes(name))
      throw new ProtocolError(
        'bad_request',
        `unknown output "${name.slice(0, 40)}"; this model has ${OUTPUT_NAMES.join(', ')}`,
      );
    if (!names.includes(name as OutputName)) names.push(name as OutputName);
  }
  return names;
}

/** The classify options from the request's parameters (other parameters are ignored, as servers may). */
function readOptions(parameters: Record<string, unknown> | undefined): ClassifyOptions {
  const p = parameters ?? {};
  const parsed = ClassifyOptions.safeParse({ explain: p.explain, topK: p.topK, explainTopK: p.explainTopK });
  if (!parsed.success)
    throw new ProtocolError('bad_request', `invalid parameters: ${zodIssueLines(parsed.error).join('; ')}`);
  return parsed.data;
}

async function infer(s: ModelService, name: string, request: InferenceRequest): Promise<InferenceResponse> {
  const images = readInputs(request, s);
  const wanted = requestedOutputs(request);
  const options = readOptions(request.parameters);
  const classes = s.manifest.classes.length;
  // The logits output needs every class, so the model is asked for all of them (past the API's top-k cap,
  // which bounds response size, not work) and the explanation is cut back to what was asked; evidence is
  // only computed when the explanation is returned.
  const asked: ClassifyOptions = {
    explain: options.explain && wanted.includes('explanation'),
    topK: classes,
    explainTopK: options.explainTopK,
  };
  const full = await Promise.all(
    images.map((data) => s.classify(tensor('float32', [1, ...s.inputShape], data), asked)),
  );
  const byClass = (e: Explanation, key: 'logit' | 'probability') => {
    const v = new Array<number>(classes).fill(0);
    for (const score of e.topK) v[score.classIndex] = score[key];
    return v;
  };
  const build: Record<OutputName, () => ResponseOutput> = {
    logits: () => ({
      name: 'logits',
      datatype: 'FP32',
      shape: [full.length, classes],
      data: full.flatMap((e) => byClass(e, 'logit')),
    }),
    probabilities: () => ({
      name: 'probabilities',
      datatype: 'FP32',
      shape: [full.length, classes],
      data: full.flatMap((e) => byClass(e, 'probability')),
    }),
    explanation: () => ({
      name: 'explanation',
      datatype: 'BYTES',
      shape: [full.length],
      data: full.map((e) => {
        const k = Math.min(options.topK, classes);
        // What /invocations answers for the same options: the ranking and evidence are prefixes of the full ones.
        const cut = { ...e, topK: e.topK.slice(0, k), classes: e.classes.slice(0, k) };
        return JSON.stringify(Explanation.parse(cut));
      }),
    }),
  };
  return {
    model_name: name,
    model_version: s.manifest.version,
    ...(request.id !== undefined && { id: request.id }),
    outputs: wanted.map((name) => build[name]()),
  };
}

/** The /v2 routes, to mount at the root of the backend app (`app.route('/', openInferenceRoutes(…))`). */
export function openInferenceRoutes(o: OpenInferenceOptions): Hono<Env> {
  const app = new Hono<Env>();

  app.get('/v2', (c) => c.json({ name: MODEL_NAME, version: SERVER_VERSION, extensions: [] }));
  // Liveness: the process answers (a loading model is not a reason to restart it).
  app.get('/v2/health/live', (c) => c.json({ live: true }));
  // "A 200 status code indicates true and a 4xx status code indicates false" (Health); 4xx also fails a probe.
  // The server is ready once every model is: each may be asked for.
  app.get('/v2/health/ready', (c) => {
    const ready = allLoaded(o.models);
    return c.json({ ready }, ready ? 200 : 400);
  });

  const { models } = o;
  /** The served name `name` stands for: itself, or the default model for the alias (a model may be named it). */
  const servedName = (name: string): string | undefined =>
    models.names.includes(name) ? name : name === MODEL_NAME ? models.defaultName : undefined;
  const known = () => [MODEL_NAME, ...models.names.filter((n) => n !== MODEL_NAME)].map((n) => `"${n}"`);

  /** The model `name` (and `version`, when given) names; otherwise the error the protocol wants. */
  const model = (c: Context<Env>): ModelService | Response => {
    const name = c.req.param('name') ?? '';
    const version = c.req.param('version');
    const served = servedName(name);
    if (served !== undefined) c.set('model', served);
    if (served === undefined)
      return oipError(c, 404, `unknown model "${name.slice(0, 40)}"; this server has ${known().join(', ')}`);
    const s = models.service(served);
    if (!s) return oipError(c, 503, `model "${name}" is still loading; retry shortly`);
    if (version !== undefined && version !== s.manifest.version)
      return oipError(
        c,
        404,
        `unknown version "${version.slice(0, 64)}" of "${name}"; loaded: ${s.manifest.version}`,
      );
    return s;
  };

  for (const base of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(base, (c) => {
      const s = model(c);
      return s instanceof Response ? s : c.json(modelMetadata(s, c.req.param('name')));
    });
    app.get(`${base}/ready`, (c) => {
      // A model still loading is "false" (400 with the readiness body), not an unknown model.
      const name = c.req.param('name') ?? '';
      const served = servedName(name);
      if (served !== undefined && !models.service(served)) return c.json({ name, ready: false }, 400);
      const s = model(c);
      return s instanceof Response ? s : c.json({ name, ready: true });
    });
    app.post(`${base}/infer`, async (c) => {
      const s = model(c);
      if (s instanceof Response) return s;
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        return oipError(c, 400, 'the body is not JSON (an inference request object)');
      }
      const parsed = InferenceRequest.safeParse(body);
      if (!parsed.success)
        return oipError(c, 400, `invalid inference request: ${zodIssueLines(parsed.error).join('; ')}`);
      return c.json(await infer(s, c.req.param('name') ?? MODEL_NAME, parsed.data));
    });
  }

  app.onError((err, c) => {
    if (err instanceof ProtocolError) return oipError(c, HTTP_STATUS[err.code], err.message);
    if (err instanceof TensorFormatError) return oipError(c, 400, err.message);
    if (err instanceof QueueFullError) {
      c.header('Retry-After', String(o.retryAfterSeconds ?? 1));
      return oipError(c, 503, err.message);
    }
    o.log?.({ event: 'error', path: new URL(c.req.url).pathname, error: err.message });
    return oipError(c, 500, 'internal error');
  });

  return app;
}
