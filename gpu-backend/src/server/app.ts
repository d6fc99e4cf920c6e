// The backend's HTTP face (SageMaker container contract + /v1): parsing, auth, validation, errors.
// It never does maths: the model service does.
import {
  apiError,
  ClassifyOptions,
  ClassifyQuery,
  ClassifyRequest,
  decodeBase64,
  decodeFrame,
  decodeJson,
  type ErrorCode,
  Explanation,
  HTTP_STATUS,
  SIGNATURE_HEADER,
  TENSOR_MEDIA_TYPE,
  TensorFormatError,
  TIMESTAMP_HEADER,
  verifyRequest,
  type WireTensor,
  zodApiError,
} from '@protopool/shared';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { QueueFullError } from './batcher';
import { InputError, type ModelService } from './model-service';

export interface AppOptions {
  /** The loaded model, or undefined while it loads (/ping answers 503). */
  service: () => ModelService | undefined;
  engine: string;
  /** HMAC secret; undefined only when the operator chose --insecure. */
  secret: string | undefined;
  maxBodyBytes: number;
  /** Seconds a client should wait before retrying when the queue is full. */
  retryAfterSeconds: number;
  log: (event: Record<string, unknown>) => void;
}

type Env = { Variables: { body: Uint8Array } };

/** The header SageMaker forwards from InvokeEndpoint's CustomAttributes. */
export const SAGEMAKER_ATTRIBUTES = 'X-Amzn-SageMaker-Custom-Attributes';

/**
 * `<attributes>&pp-ts=<unix s>&pp-sig=v1=<hex>`: the HMAC scheme with path "/invocations?<attributes>"
 * (SageMaker forwards only this header, so the signature rides in it, after the attributes it covers).
 */
export function signatureInAttributes(header: string | undefined) {
  if (!header) return null;
  const m = /^(?:(.*)&)?pp-ts=(\d{1,12})&pp-sig=(v1=[0-9a-f]{64})$/.exec(header);
  return m ? { signed: m[1] ?? '', timestamp: m[2]!, signature: m[3]! } : null;
}

function fail(c: Context, code: ErrorCode, message: string, details?: unknown) {
  return c.json(apiError(code, message, details), HTTP_STATUS[code] as 400);
}

export function createApp(o: AppOptions): Hono<Env> {
  const app = new Hono<Env>();

  app.get('/ping', (c) => {
    const s = o.service();
    const body = {
      status: s ? 'ok' : 'loading',
      engine: o.engine,
      model: s?.manifest.version ?? null,
      ...s?.stats(),
    };
    return c.json(body, s ? 200 : 503);
  });

  // Everything but /ping: size limit, then the HMAC check on the exact bytes received.
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
    if (o.secret !== undefined) {
      const url = new URL(c.req.url);
      let timestamp = c.req.header(TIMESTAMP_HEADER);
      let signature = c.req.header(SIGNATURE_HEADER);
      let path = url.pathname + url.search;
      const carried = signatureInAttributes(c.req.header(SAGEMAKER_ATTRIBUTES));
      if (!timestamp && !signature && carried) {
        // Through SageMaker our headers are dropped; the edge signs inside CustomAttributes instead.
        ({ timestamp, signature } = carried);
        path = `${url.pathname}?${carried.signed}`;
      }
      const verdict = await verifyRequest(
        o.secret,
        { timestamp, signature },
        { method: c.req.method, path, body },
      );
      if (!verdict.ok) {
        o.log({ event: 'auth_refused', path: url.pathname, reason: verdict.reason });
        return fail(c, 'unauthorized', `request refused: ${verdict.reason}`);
      }
    }
    await next();
  });

  const ready = () => {
    const s = o.service();
    if (!s) throw new HttpFailure('backend_unavailable', 'model is still loading; retry shortly');
    return s;
  };

  const classify = async (c: Context<Env>) => {
    const s = ready();
    // Behind SageMaker only /invocations is reachable and query strings are dropped: options and the
    // other routes arrive in the CustomAttributes header instead (route=manifest, route=prototype-image&id=N).
    const attributes = new URLSearchParams(c.req.header(SAGEMAKER_ATTRIBUTES) ?? '');
    attributes.delete('pp-ts');
    attributes.delete('pp-sig');
    const route = attributes.get('route');
    if (route === 'manifest') return c.json(s.manifest);
    if (route === 'prototype-image') return prototypeImage(c, attributes.get('id') ?? '');
    if (route !== null)
      return fail(c, 'bad_request', `unknown route "${route.slice(0, 40)}" in custom attributes`);
    attributes.delete('route');
    const query = ClassifyQuery.safeParse({ ...Object.fromEntries(attributes), ...c.req.query() });
    if (!query.success) return c.json(zodApiError(query.error, 'query'), 400);
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const limits = { maxElements: s.inputShape.reduce((a, b) => a * b, 1) };
    let tensor: WireTensor;
    let bodyOptions: Partial<ClassifyOptions> = {};
    if (type === TENSOR_MEDIA_TYPE) {
      tensor = decodeFrame(c.get('body'), limits);
    } else if (type === 'image/png' || type === 'image/jpeg') {
      tensor = await s.imageTensor(c.get('body'));
    } else if (type === 'application/json') {
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder().decode(c.get('body')));
      } catch {
        return fail(c, 'bad_request', 'body is not valid JSON');
      }
      const req = ClassifyRequest.safeParse(json);
      if (!req.success) return c.json(zodApiError(req.error, 'request body'), 400);
      if (req.data.image) {
        const bytes = decodeBase64(req.data.image.data);
        if (!bytes) return fail(c, 'bad_request', 'Invalid request body: image.data: not canonical base64');
        tensor = await s.imageTensor(bytes);
      } else {
        tensor = decodeJson(req.data.tensor, limits);
      }
      bodyOptions = req.data.options;
    } else {
      return fail(
        c,
        'unsupported_media_type',
        `content-type must be ${TENSOR_MEDIA_TYPE}, application/json, image/png or image/jpeg, got "${type || 'none'}"`,
      );
    }
    const q = query.data;
    const options = ClassifyOptions.parse({
      ...bodyOptions,
      ...(q.explain === undefined ? {} : { explain: q.explain }),
      ...(q.topK === undefined ? {} : { topK: q.topK }),
      ...(q.explainTopK === undefined ? {} : { explainTopK: q.explainTopK }),
    });
    const explanation = await s.classify(tensor, options);
    // Nothing leaves unchecked: a response that breaks the contract is our bug, reported as a 500.
    return c.json(Explanation.parse(explanation));
  };

  app.post('/invocations', classify);
  app.post('/v1/explain', classify);

  app.get('/v1/model', (c) => c.json(ready().manifest));
  app.get('/v1/prototypes', (c) => c.json(ready().global));
  app.get('/v1/prototypes/:id', (c) => {
    const s = ready();
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

  const prototypeImage = (c: Context, id: string) => {
    const s = ready();
    const png = /^\d{1,6}$/.test(id) ? s.images.get(Number(id)) : undefined;
    if (!png) return fail(c, 'not_found', `no image for prototype "${id.slice(0, 12)}"`);
    return c.body(png as unknown as ArrayBuffer, 200, {
      'content-type': 'image/png',
      'cache-control': 'public, max-age=31536000, immutable',
    });
  };
  app.get('/v1/prototypes/:id/image', (c) => prototypeImage(c, c.req.param('id')));

  app.notFound((c) => fail(c, 'not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));

  app.onError((err, c) => {
    if (err instanceof HttpFailure) return fail(c, err.code, err.message);
    if (err instanceof TensorFormatError || err instanceof InputError)
      return fail(c, 'bad_request', err.message);
    if (err instanceof QueueFullError) {
      c.header('Retry-After', String(o.retryAfterSeconds));
      return fail(c, 'overloaded', err.message);
    }
    o.log({ event: 'error', path: new URL(c.req.url).pathname, error: err.message });
    return fail(c, 'internal', 'internal error');
  });

  return app;
}

export class HttpFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}
