// The backend's /metrics and request tracing, on the real process: Prometheus counts that match what was
// sent and what the batcher did, the model info, and one log line per request under the id it echoes.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CUSTOM_ATTRIBUTES_HEADER,
  encodeFrame,
  invocationAttributes,
  ModelManifest,
  signAttributes,
  signRequest,
  TENSOR_MEDIA_TYPE,
  tensor,
} from '@protopool/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../gpu-backend/src/server/app';
import { oneModel } from '../../gpu-backend/src/server/model-catalog';
import { type BackendProcess, startBackend, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const SECRET = 'metrics-suite-secret-value';
const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
let backend: BackendProcess;
let version: string;

const image = (seed: number) => tensor('float32', [1, 28, 28, 1], seededArray(784, seed));

async function call(
  path: string,
  init: { body?: Uint8Array; headers?: Record<string, string>; sign?: boolean } = {},
) {
  const method = init.body === undefined ? 'GET' : 'POST';
  const body = init.body ?? new Uint8Array();
  const headers: Record<string, string> = { ...init.headers };
  if (init.body) headers['content-type'] = TENSOR_MEDIA_TYPE;
  if (init.sign !== false) Object.assign(headers, await signRequest(SECRET, { method, path, body }));
  return fetch(backend.url + path, { method, headers, body: init.body });
}

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The exposition format's sample lines (comments skipped), parsed by hand rather than by prom-client. */
function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
      if (!m) throw new Error(`not a sample line: ${l}`);
      const labels = Object.fromEntries(
        [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]),
      );
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

async function scrape() {
  const res = await fetch(`${backend.url}/metrics`);
  expect(res.status).toBe(200);
  const samples = parse(await res.text());
  /** The one sample of `name` whose labels include `labels` (0 when absent: a counter not yet incremented). */
  return (name: string, labels: Record<string, string> = {}) => {
    const found = samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    expect(found.length).toBeLessThanOrEqual(1);
    return found[0]?.value ?? 0;
  };
}

const ping = async () =>
  (await (await fetch(`${backend.url}/ping`)).json()) as {
    engine: string;
    tensors: number;
    batches: number;
    requests: number;
  };

const requestLines = () =>
  backend.logs
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === 'request');

/** The request lines logged under `id`, once there is one (the child's stdout reaches us asynchronously). */
async function linesFor(id: string) {
  for (let i = 0; i < 100 && !requestLines().some((e) => e.id === id); i++)
    await new Promise((r) => setTimeout(r, 20));
  return requestLines().filter((e) => e.id === id);
}

let modelDir: string;

beforeAll(async () => {
  modelDir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-metrics-')));
  // A batching window long enough that concurrent requests share forward passes.
  backend = await startBackend(['--model', modelDir, '--max-wait-ms', '20', '--max-batch', '4'], {
    PROTOPOOL_HMAC_SECRET: SECRET,
  });
  version = ModelManifest.parse(await (await call('/v1/model')).json()).version;
});

afterAll(async () => {
  await backend?.stop();
});

describe('GET /metrics', () => {
  it('answers without a signature, in the Prometheus text format', async () => {
    const res = await fetch(`${backend.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE protopool_requests_total counter');
    expect(text).toContain('# TYPE protopool_batch_size histogram');
    // prom-client's default process metrics live in the same registry.
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge');
  });

  it('counts requests exactly by route pattern and status', async () => {
    const was = await scrape();
    for (let i = 0; i < 3; i++) expect((await call('/v1/model')).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await call('/v1/model', { sign: false })).status).toBe(401);
    expect((await call('/v1/prototypes/999999')).status).toBe(404);
    expect((await call('/v1/prototypes/0')).status).toBe(200);
    const bad = tensor('float32', [1, 28, 27, 1], new Float32Array(28 * 27));
    expect((await call('/invocations', { body: encodeFrame(bad) })).status).toBe(400);
    expect((await call('/no/such/route')).status).toBe(404);
    const now = await scrape();
    const delta = (route: string, status: string) =>
      now('protopool_requests_total', { route, status }) - was('protopool_requests_total', { route, status });
    expect(delta('/v1/model', '200')).toBe(3);
    expect(delta('/v1/model', '401')).toBe(2);
    // The pattern, never the raw path: label values stay few whatever clients send.
    expect(delta('/v1/prototypes/:id', '404')).toBe(1);
    expect(delta('/v1/prototypes/:id', '200')).toBe(1);
    expect(delta('/invocations', '400')).toBe(1);
    expect(delta('unmatched', '404')).toBe(1);
    expect(delta('/invocations', '200')).toBe(0);
    // Every request counted has its latency observed once.
    const durations = (s: typeof now) =>
      s('protopool_request_duration_seconds_count', { route: '/v1/model' });
    expect(durations(now) - durations(was)).toBe(5);
  });

  it('histograms batch sizes as the batcher ran them: count = batches, sum = requests', async () => {
    const K = 10;
    const [was, pingBefore] = [await scrape(), await ping()];
    const answers = await Promise.all(
      Array.from({ length: K }, (_, i) => call('/invocations', { body: encodeFrame(image(100 + i)) })),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(K).fill(200));
    const [now, pingAfter] = [await scrape(), await ping()];
    const d = (name: string) => now(name) - was(name);
    const batches = pingAfter.batches - pingBefore.batches;
    expect(pingAfter.requests - pingBefore.requests).toBe(K);
    expect(d('protopool_batch_size_sum')).toBe(K);
    expect(d('protopool_batch_size_count')).toBe(batches);
    // --max-batch 4: at least ceil(10 / 4) passes, and some of them shared.
    expect(batches).toBeGreaterThanOrEqual(3);
    expect(batches).toBeLessThan(K);
    expect(d('protopool_inference_seconds_count')).toBe(batches);
    expect(d('protopool_queue_wait_seconds_count')).toBe(K);
    expect(d('protopool_inference_seconds_sum')).toBeGreaterThan(0);
    // No batch is larger than --max-batch: everything lies in the le="4" bucket.
    expect(now('protopool_batch_size_bucket', { le: '4' })).toBe(now('protopool_batch_size_count'));
  });

  it('names the model version and engine in the info metric, and reads live gauges', async () => {
    const p = await ping();
    const m = await scrape();
    expect(m('protopool_model_info', { version, engine: p.engine })).toBe(1);
    expect(m('protopool_tensors')).toBe(p.tensors);
    expect(m('protopool_queue_depth')).toBe(0);
    // The scrape itself is the one request in flight.
    expect(m('protopool_in_flight_requests')).toBe(1);
  });

  it('answers 404 (unsigned) when turned off', async () => {
    const app = createApp({
      models: oneModel('tiny', () => undefined),
      engine: 'test',
      secret: SECRET,
      maxBodyBytes: 1024,
      retryAfterSeconds: 1,
      log: () => {},
      metrics: false,
    });
    const res = await app.request('/metrics');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    const on = createApp({
      ...{ models: oneModel('tiny', () => undefined), engine: 'test', secret: SECRET },
      maxBodyBytes: 1024,
      retryAfterSeconds: 1,
      log: () => {},
    });
    expect((await on.request('/metrics')).status).toBe(200);
  });

  it('is off in a process started with `serve --no-metrics`', async () => {
    const quiet = await startBackend(['--model', modelDir, '--no-metrics'], {
      PROTOPOOL_HMAC_SECRET: SECRET,
    });
    try {
      expect((await fetch(`${quiet.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${quiet.url}/ping`)).status).toBe(200);
    } finally {
      await quiet.stop();
    }
  });
});

describe('request ids and log lines', () => {
  it('takes the id from the signed query, echoes it, and logs one line with the batch timing and traceparent', async () => {
    const res = await call('/invocations?topK=2&rid=edge-req.42', {
      body: encodeFrame(image(7)),
      headers: { traceparent: TRACE },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('edge-req.42');
    const lines = await linesFor('edge-req.42');
    expect(lines).toEqual([
      {
        time: expect.any(String),
        event: 'request',
        id: 'edge-req.42',
        route: '/invocations',
        // The default model, served under its directory's name (trainTinyModel's <out>/model).
        model: 'model',
        status: 200,
        ms: expect.any(Number),
        queueMs: expect.any(Number),
        inferMs: expect.any(Number),
        batchSize: 1,
        traceparent: TRACE,
      },
    ]);
    const [line] = lines as [{ ms: number; queueMs: number; inferMs: number }];
    expect(line.queueMs + line.inferMs).toBeLessThanOrEqual(line.ms + 0.2);
  });

  it('takes the id and traceparent from signed CustomAttributes, as SageMaker forwards them', async () => {
    const body = encodeFrame(image(8));
    const attributes = await signAttributes(
      SECRET,
      invocationAttributes({ route: 'classify', query: {}, requestId: 'sm:1', traceparent: TRACE }),
      body,
    );
    const res = await fetch(`${backend.url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': TENSOR_MEDIA_TYPE, [CUSTOM_ATTRIBUTES_HEADER]: attributes },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('sm:1');
    expect(await linesFor('sm:1')).toMatchObject([{ status: 200, traceparent: TRACE }]);
  });

  it('keeps a sane X-Request-Id header, replaces an insane one, and echoes both on refusals too', async () => {
    const kept = await call('/v1/model', { headers: { 'x-request-id': 'client-1' }, sign: false });
    expect(kept.status).toBe(401);
    expect(kept.headers.get('x-request-id')).toBe('client-1');
    const replaced = await call('/v1/model', { headers: { 'x-request-id': 'bad id"with quotes' } });
    expect(replaced.status).toBe(200);
    const id = replaced.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await linesFor('client-1')).toMatchObject([{ route: '/v1/model', status: 401 }]);
    expect(await linesFor(id)).toMatchObject([{ route: '/v1/model', status: 200 }]);
    expect(backend.logs.join('\n')).not.toContain('with quotes');
  });

  it('never logs the secret or a signature, and does not log probes or scrapes', async () => {
    await fetch(`${backend.url}/ping`, { headers: { 'x-request-id': 'probe-1' } });
    await fetch(`${backend.url}/metrics`, { headers: { 'x-request-id': 'scrape-1' } });
    await fetch(`${backend.url}/v2/health/ready`, { headers: { 'x-request-id': 'probe-2' } });
    await fetch(`${backend.url}/v2/models/protopool/ready`, { headers: { 'x-request-id': 'probe-3' } });
    await fetch(`${backend.url}/v2/models/protopool`, { headers: { 'x-request-id': 'metadata-1' } });
    await call('/v1/model', { headers: { 'x-request-id': 'last-1' } });
    await linesFor('last-1'); // the lines before it have arrived too
    const all = backend.logs.join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toMatch(/v1=[0-9a-f]{64}/);
    const quiet = ['probe-1', 'scrape-1', 'probe-2', 'probe-3'];
    expect(requestLines().filter((e) => quiet.includes(String(e.id)))).toEqual([]);
    // Model metadata is a client's question, not a probe: logged.
    expect(requestLines().filter((e) => e.id === 'metadata-1')).toHaveLength(1);
    expect(requestLines().length).toBeGreaterThan(10);
  });
});
