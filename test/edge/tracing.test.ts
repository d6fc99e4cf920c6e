// Request tracing through the real Worker and the real backend process: the id every edge response carries,
// the id and traceparent arriving at the backend inside the signed request (HTTP and SageMaker), and one JSON
// log line per request on each tier with no key, secret or signature in any of them.
import { decodeBase64 } from '@protopool/shared';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createApp } from '../../edge/src/app';
import { HttpBackend } from '../../edge/src/transport/http';
import { SageMakerBackend } from '../../edge/src/transport/sagemaker';
import { auth, env, KEY } from './env';
import { call, frameBody } from './requests';
import { input } from './transport-contract';
import { worker } from './worker';

const TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const HMAC_SECRET = env.PROTOPOOL_HMAC_SECRET!;

const served = inject('servedModels');
const traced = (seed: number, id: string, traceparent?: string) => {
  const init = frameBody(input(seed));
  return {
    ...init,
    headers: { ...init.headers, 'x-request-id': id, ...(traceparent && { traceparent }) },
  };
};

async function backendLogs(): Promise<Record<string, unknown>[]> {
  const lines = (await (await fetch(inject('backendLogsUrl'))).json()) as string[];
  return lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The backend's request lines under `id`, once one has arrived (its stdout reaches the setup asynchronously). */
async function backendLines(id: string) {
  for (let i = 0; i < 100; i++) {
    const found = (await backendLogs()).filter((e) => e.event === 'request' && e.id === id);
    if (found.length) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  return [];
}

/** The edge's request lines logged while `run` ran. */
async function edgeLines(run: () => Promise<unknown>) {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  await run();
  const lines = log.mock.calls.map(([line]) => JSON.parse(String(line)) as Record<string, unknown>);
  log.mockRestore();
  return lines.filter((e) => e.event === 'request');
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('X-Request-Id at the edge', () => {
  it('echoes a sane client id on every response, errors included', async () => {
    const id = 'client.1:a_b-C';
    for (const [path, init, status] of [
      ['/healthz', {}, 200],
      ['/v1/model', {}, 200],
      ['/v1/classify', { method: 'POST' }, 401],
      ['/no/such/route', {}, 404],
    ] as const) {
      const res = await worker.fetch(`http://edge${path}`, { ...init, headers: { 'x-request-id': id } });
      expect(res.status, path).toBe(status);
      expect(res.headers.get('x-request-id'), path).toBe(id);
    }
  });

  it('gives a fresh UUID when the client sent none or an insane one', async () => {
    const seen = new Set<string>();
    for (const given of [undefined, '', 'has space', 'x'.repeat(129), 'quote"d', 'a/b']) {
      const res = await worker.fetch('http://edge/healthz', {
        headers: given === undefined ? {} : { 'x-request-id': given },
      });
      const id = res.headers.get('x-request-id')!;
      expect(id, String(given)).toMatch(UUID);
      seen.add(id);
    }
    expect(seen.size).toBe(6);
  });
});

describe('the trace at the backend', () => {
  it('over HTTP: the id rides in the signed query, the traceparent in its header, and the backend logs both', async () => {
    const sent: { url: string; headers: Headers }[] = [];
    const app = createApp({
      backend: (config) =>
        new HttpBackend({
          baseUrl: config.BACKEND_URL!,
          secret: config.PROTOPOOL_HMAC_SECRET,
          timeoutMs: 5000,
          // Watches what leaves for the backend; the request still goes to the real process.
          fetch: (url, init) => {
            sent.push({ url: String(url), headers: new Headers(init?.headers) });
            return fetch(url, init);
          },
        }),
    });
    const res = await call(app, '/v1/classify', traced(7101, 'http-trace-1', TRACE));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('http-trace-1');
    const classify = sent.find((s) => new URL(s.url).pathname === '/invocations')!;
    expect(new URL(classify.url).searchParams.get('rid')).toBe('http-trace-1');
    expect(classify.headers.get('x-request-id')).toBeNull();
    expect(classify.headers.get('traceparent')).toBe(TRACE);
    expect(await backendLines('http-trace-1')).toContainEqual(
      expect.objectContaining({ route: '/invocations', status: 200, traceparent: TRACE, batchSize: 1 }),
    );
  });

  it('through SageMaker: both ride in the signed CustomAttributes, the only header it forwards', async () => {
    const app = createApp({
      backend: (config) =>
        new SageMakerBackend({
          endpoint: 'protopool-test',
          region: 'us-east-1',
          accessKeyId: 'AKIDTEST',
          secretAccessKey: 'test-secret-key',
          secret: config.PROTOPOOL_HMAC_SECRET,
          timeoutMs: 5000,
          baseUrl: env.TEST_SAGEMAKER_URL,
        }),
    });
    const res = await call(app, '/v1/classify', traced(7102, 'sm-trace-1', TRACE));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('sm-trace-1');
    // SageMaker reaches /invocations only: the classification is the line with a batch (the manifest has none).
    expect(await backendLines('sm-trace-1')).toContainEqual(
      expect.objectContaining({ route: '/invocations', status: 200, traceparent: TRACE, batchSize: 1 }),
    );
  });

  it('drops a malformed traceparent but keeps the id', async () => {
    const res = await worker.fetch('http://edge/v1/classify', traced(7103, 'bad-tp-1', TRACE.toUpperCase()));
    expect(res.status).toBe(200);
    const lines = await backendLines('bad-tp-1');
    expect(lines).toContainEqual(expect.objectContaining({ route: '/invocations', status: 200 }));
    for (const l of lines) expect(l).not.toHaveProperty('traceparent');
  });

  it('replaces an insane client id before it reaches the backend', async () => {
    const res = await worker.fetch('http://edge/v1/classify', traced(7104, 'evil id;"drop"'));
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(UUID);
    expect(await backendLines(id)).toContainEqual(expect.objectContaining({ route: '/invocations' }));
  });
});

describe('the edge log line', () => {
  it('is one JSON line per request: a miss with its backend time, then a hit from the isolate memory', async () => {
    const app = createApp();
    const lines = await edgeLines(async () => {
      await call(app, '/v1/classify', traced(7105, 'log-miss'));
      await call(app, '/v1/classify', traced(7105, 'log-hit'));
      await call(app, '/v1/classify', { method: 'POST', headers: { 'x-request-id': 'log-401' } });
      await call(app, '/v1/classify?model=parts', {
        method: 'POST',
        body: decodeBase64(served.image)!,
        headers: { ...auth(), 'content-type': 'image/png', 'x-request-id': 'log-parts' },
      });
    });
    // The model a line names is the one the client asked for (none: the default); its version is the answer's.
    const [tiny, parts] = served.models.map((m) => m.version.slice(0, 12));
    expect(lines).toEqual([
      {
        event: 'request',
        id: 'log-miss',
        route: '/v1/classify',
        status: 200,
        cache: 'MISS',
        layer: null,
        ms: expect.any(Number),
        backendMs: expect.any(Number),
        modelVersion: tiny,
      },
      {
        event: 'request',
        id: 'log-hit',
        route: '/v1/classify',
        status: 200,
        cache: 'HIT',
        layer: 'memory',
        ms: expect.any(Number),
        modelVersion: tiny,
      },
      { event: 'request', id: 'log-401', route: '/v1/classify', status: 401, ms: expect.any(Number) },
      {
        event: 'request',
        id: 'log-parts',
        route: '/v1/classify',
        status: 200,
        cache: 'MISS',
        layer: null,
        ms: expect.any(Number),
        backendMs: expect.any(Number),
        model: 'parts',
        modelVersion: parts,
      },
    ]);
  });

  it('names the route pattern, not the raw path, and marks an explanation lookup', async () => {
    const lines = await edgeLines(async () => {
      await worker.fetch(`http://edge/v1/explanations/${'f'.repeat(64)}`, {
        headers: { ...auth(), 'x-request-id': 'lookup-1' },
      });
    });
    expect(lines).toEqual([
      {
        event: 'request',
        id: 'lookup-1',
        route: '/v1/explanations/:id',
        status: 404,
        cache: 'MISS',
        layer: null,
        ms: expect.any(Number),
      },
    ]);
  });

  it('never carries the API key, the HMAC secret or a signature, on either tier', async () => {
    const spies = (['log', 'warn', 'error', 'info', 'debug'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(() => {}),
    );
    await worker.fetch('http://edge/v1/classify', traced(7106, 'secret-check', TRACE));
    await worker.fetch('http://edge/v1/classify', { method: 'POST', headers: auth('wrong-key') });
    const edge = spies.flatMap((s) => s.mock.calls.map((args) => args.map(String).join(' ')));
    expect(edge.length).toBeGreaterThanOrEqual(2);
    await backendLines('secret-check');
    const backend = (await backendLogs()).map((e) => JSON.stringify(e));
    for (const line of [...edge, ...backend]) {
      expect(line).not.toContain(KEY);
      expect(line).not.toContain('wrong-key');
      expect(line).not.toContain(HMAC_SECRET);
      expect(line).not.toMatch(/v1=[0-9a-f]{64}/);
      expect(line).not.toMatch(/bearer/i);
    }
  });
});
