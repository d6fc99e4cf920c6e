// The backend's HTTP face (SageMaker container contract + /v1): parsing, auth, validation, errors.
// It never does maths: the model service does.
import {
  apiError,
  CUSTOM_ATTRIBUTES_HEADER,
  type ErrorCode,
  Explanation,
  HTTP_STATUS,
  hasSignedAttributes,
  ModelList,
  modelSummary,
  ProtocolError,
  parseClassifyBody,
  parseClassifyQuery,
  parseModelQuery,
  readInvocation,
  resolveOptions,
  SIGNATURE_HEADER,
  TensorFormatError,
  TIMESTAMP_HEADER,
  unknownModel,
  verifyAttributes,
  verifyRequest,
} from '@protopool/shared';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { QueueFullError } from './batcher';
import { BackendMetrics } from './metrics';
import { allLoaded, type ServedModels } from './model-catalog';
import type { ModelService } from './model-service';
import { isOpenInferenceProbe, openInferenceRoutes } from './open-inference';
import { type RequestVars, requestLog } from './request-log';

export interface AppOptions {
  /** The models served, each under its name; /ping answers 503 until every one is loaded. */
  models: ServedModels;
  engine: string;
  /** HMAC secret; undefined only when the operator chose --insecure. */
  secret: string | undefined;
  maxBodyBytes: number;
  /** Seconds a client should wait before retrying when the queue is full. */
  retryAfterSeconds: number;
  log: (event: Record<string, unknown>) => void;
  /** GET /metrics (Prometheus text, unsigned like /ping); false answers it 404. Default true. */
  metrics?: boolean;
}

type Env = { Variables: { body: Uint8Array } & RequestVars };

function fail(c: Context, code: ErrorCode, message: string, details?: unknown) {
  return c.json(apiError(code, message, details), HTTP_STATUS[code] as 400);
}

export function createApp(o: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const { models } = o;
  const metrics = o.metrics === false ? undefined : new BackendMetrics(models, o.engine);
  app.use('*', requestLog({ models, metrics, log: o.log }));

  // Unsigned, as /ping: registered before the HMAC check, and a scraper holds no secret.
  app.get('/metrics', async (c) => {
    if (!metrics) return fail(c, 'not_found', 'metrics are turned off on this backend');
    return c.body(await metrics.render(), 200, { 'content-type': metrics.registry.contentType });
  });

  // Ready only once every model is in: a client may ask for any of them. `model` stays the default's version;
  // the queue and counters add up every model's (the process is idle only when all are); tensors is the
  // process's count already.
  app.get('/ping', (c) => {
    const ready = allLoaded(models);
    const loaded = models.names.flatMap((n) => models.service(n)?.stats() ?? []);
    const stats = loaded.length
      ? loaded.reduce((sum, t) => ({
          tensors: t.tensors,
          queue: sum.queue + t.queue,
          batches: sum.batches + t.batches,
          requests: sum.requests + t.requests,
        }))
      : {};
    const body = {
      status: ready ? 'ok' : 'loading',
      engine: o.engine,
      model: models.service(models.defaultName)?.manifest.version ?? null,
      models: Object.fromEntries(models.names.map((n) => [n, models.service(n)?.manifest.version ?? null])),
      ...stats,
    };
    return c.json(body, ready ? 200 : 503);
  });

  // Everything but /ping and /metrics: size limit, then the HMAC check on the exact bytes received (not for
  // the Open Inference Protocol's GET routes: health, readiness and metadata, which Kubernetes probes call).
  app.use(
    '*',
    bodyLimit({
      maxSize: o.maxBodyBytes,
      onError: (c) => fail(c, 'payload_too_large', `request body exceeds ${o.maxBodyBytes} bytes`),
    }),
  );
  app.use('*', async (c, next) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    c.set('body', body);
    if (o.secret !== undefined && !isOpenInferenceProbe(c.req.method, c.req.path)) {
      const url = new URL(c.req.url);
      const timestamp = c.req.header(TIMESTAMP_HEADER);
      const signature = c.req.header(SIGNATURE_HEADER);
      const attributes = c.req.header(CUSTOM_ATTRIBUTES_HEADER);
      // Through SageMaker our headers are dropped; the edge signs inside CustomAttributes instead.
      const carried =
        !timestamp && !signature && url.pathname === '/invocations' && hasSignedAttributes(attributes);
      const verdict = carried
        ? await verifyAttributes(o.secret, attributes!, body)
        : await verifyRequest(
            o.secret,
            { timestamp, signature },
            { method: c.req.method, path: url.pathname + url.search, body },
          );
      if (!verdict.ok) {
        o.log({ event: 'auth_refused', id: c.get('requestId'), path: url.pathname, reason: verdict.reason });
        return fail(c, 'unauthorized', `request refused: ${verdict.reason}`);
      }
    }
    await next();
  });

  /** The model a request names (checked: 400 for a bad name, 404 for one not served), else the default. */
  const pick = (c: Context<Env>, asked: string | undefined): ModelService => {
    const name = parseModelQuery({ model: asked }) ?? models.defaultName;
    c.set('model', name); // for the request's log line
    if (!models.names.includes(name)) throw unknownModel(name, models.names);
    const s = models.service(name);
    if (!s) throw new ProtocolError('backend_unavailable', `model "${name}" is still loading; retry shortly`);
    return s;
  };
  const named = (c: Context<Env>) => pick(c, c.req.query('model'));

  /** GET /v1/models and route=models: checked like an explanation, as nothing leaves unchecked. */
  const modelList = (): ModelList => {
    if (!allLoaded(models))
      throw new ProtocolError('backend_unavailable', 'models are still loading; retry shortly');
    return ModelList.parse({
      default: models.defaultName,
      models: models.names.map((n) => modelSummary(n, models.service(n)!.manifest)),
    });
  };

  const classify = async (c: Context<Env>) => {
    // Behind SageMaker only /invocations is reachable and query strings are dropped: options, the model and
    // the other routes arrive in the CustomAttributes header instead (shared/src/invocations.ts).
    const invocation = readInvocation(c.req.header(CUSTOM_ATTRIBUTES_HEADER));
    if (invocation.route === 'models') return c.json(modelList());
    if (invocation.route === 'manifest')
      return c.json(pick(c, c.req.query('model') ?? invocation.model).manifest);
    if (invocation.route === 'prototype-image')
      return prototypeImage(c, pick(c, c.req.query('model') ?? invocation.model), invocation.id);
    const query = parseClassifyQuery({ ...invocation.query, ...c.req.query() });
    const s = pick(c, query.model);
    const { tensor, options } = await parseClassifyBody(c.req.header('content-type'), c.get('body'), {
      input: s.manifest.input,
      decodeImage: (bytes) => s.imageInput(bytes),
    });
    const explanation = await s.classify(tensor, resolveOptions(options, query), (t) => c.set('timing', t));
    // Nothing leaves unchecked: a response that breaks the contract is our bug, reported as a 500.
    return c.json(Explanation.parse(explanation));
  };

  app.post('/invocations', classify);
  app.post('/v1/explain', classify);

  app.get('/v1/models', (c) => c.json(modelList()));
  app.get('/v1/model', (c) => c.json(named(c).manifest));
  app.get('/v1/prototypes', (c) => c.json(named(c).global));
  app.get('/v1/prototypes/:id', (c) => {
    const s = named(c);
    const id = c.req.param('id');
    const p = /^\d{1,6}$/.test(id) ? s.global.prototypes.find((q) => q.id === Number(id)) : undefined;
    if (!p)
      return fail(
        c,
        'not_found',
        `no prototype "${id.slice(0, 40)}" in model ${s.manifest.version.slice(0, 12)}`,
      );
    return c.json(p);
  });

  // Given the model the request took, so one request never reads two models across a switch.
  const prototypeImage = (c: Context, s: ModelService, id: string) => {
    const png = /^\d{1,6}$/.test(id) ? s.images.get(Number(id)) : undefined;
    if (!png) return fail(c, 'not_found', `no image for prototype "${id.slice(0, 12)}"`);
    return c.body(png as unknown as ArrayBuffer, 200, {
      'content-type': 'image/png',
      'cache-control': 'public, max-age=31536000, immutable',
    });
  };
  app.get('/v1/prototypes/:id/image', (c) => prototypeImage(c, named(c), c.req.param('id')));

  app.route(
    '/',
    openInferenceRoutes({
      models,
      engine: o.engine,
      retryAfterSeconds: o.retryAfterSeconds,
      log: o.log,
    }),
  );

  app.notFound((c) => fail(c, 'not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));

  app.onError((err, c) => {
    if (err instanceof ProtocolError) return fail(c, err.code, err.message, err.details);
    if (err instanceof TensorFormatError) return fail(c, 'bad_request', err.message);
    if (err instanceof QueueFullError) {
      c.header('Retry-After', String(o.retryAfterSeconds));
      return fail(c, 'overloaded', err.message);
    }
    o.log({ event: 'error', id: c.get('requestId'), path: new URL(c.req.url).pathname, error: err.message });
    return fail(c, 'internal', 'internal error');
  });

  return app;
}
