// The edge's Workers Analytics Engine data point: one per request when an ANALYTICS dataset is bound, none (and no
// failure) when it is not. Miniflare's local Analytics Engine binding drops every write (its simulator's
// writeDataPoint is empty), so nothing written could be read back: these tests bind a recording dataset instead,
// which also enforces the documented limits (one index of at most 96 bytes, at most 20 blobs and 20 doubles,
// blobs at most 16 KB in all).
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createApp } from '../../edge/src/app';
import type { Env } from '../../edge/src/env';
import { auth, env, KEY } from './env';
import { call, frameBody } from './requests';
import { input } from './transport-contract';

const HMAC_SECRET = env.PROTOPOOL_HMAC_SECRET!;
const bytes = (v: unknown) => new TextEncoder().encode(String(v)).length;

/** A dataset that keeps what it is given, after checking it the way the documented limits would. */
function recordingDataset() {
  const points: AnalyticsEngineDataPoint[] = [];
  const dataset: AnalyticsEngineDataset = {
    writeDataPoint(p) {
      if (!p) throw new Error('no data point');
      if ((p.indexes?.length ?? 0) > 1) throw new Error('at most one index');
      if (p.indexes?.some((i) => bytes(i) > 96)) throw new Error('index over 96 bytes');
      if ((p.blobs?.length ?? 0) > 20 || (p.doubles?.length ?? 0) > 20) throw new Error('over 20 fields');
      if ((p.blobs ?? []).reduce((n, b) => n + bytes(b), 0) > 16 * 1024) throw new Error('blobs over 16 KB');
      // A structured copy: what the runtime would have sent, not a reference the edge could change later.
      points.push(structuredClone(p));
    },
  };
  return { points, dataset };
}

const withId = (init: RequestInit, id: string) => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), 'x-request-id': id },
});

/** The log lines (console.log) and warnings (console.warn) written while `run` ran. */
async function consoleOf(run: () => Promise<unknown>) {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  await run();
  const text = (s: typeof log) => s.mock.calls.map((args) => args.map(String).join(' '));
  return { logs: text(log), warnings: text(warn) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the Analytics Engine data point', () => {
  it('a miss then a hit of the same input: one point each, with outcome, layer, timings and status', async () => {
    const { points, dataset } = recordingDataset();
    const e: Env = { ...env, ANALYTICS: dataset };
    const app = createApp();
    const { logs } = await consoleOf(async () => {
      expect((await call(app, '/v1/classify', withId(frameBody(input(7201)), 'ae-miss'), e)).status).toBe(
        200,
      );
      expect((await call(app, '/v1/classify', withId(frameBody(input(7201)), 'ae-hit'), e)).status).toBe(200);
    });
    // No model named: the default (the suite's first served model) answered, by its version's first 12 digits.
    const version = inject('servedModels').models[0]!.version.slice(0, 12);
    expect(points).toEqual([
      {
        indexes: ['/v1/classify'],
        blobs: ['/v1/classify', '2xx', 'MISS', 'none', '', 'default', version],
        doubles: [expect.any(Number), expect.any(Number), 200],
      },
      {
        indexes: ['/v1/classify'],
        blobs: ['/v1/classify', '2xx', 'HIT', 'memory', '', 'default', version],
        doubles: [expect.any(Number), 0, 200],
      },
    ]);
    // The same numbers as the log lines, which still get written.
    const lines = logs.map((l) => JSON.parse(l) as { id: string; ms: number; backendMs?: number });
    expect(lines.map((l) => l.id)).toEqual(['ae-miss', 'ae-hit']);
    expect(points[0]!.doubles).toEqual([lines[0]!.ms, lines[0]!.backendMs, 200]);
    expect(lines[0]!.backendMs).toBeGreaterThan(0);
    expect(points[1]!.doubles![0]).toBe(lines[1]!.ms);
  });

  it('a 401: status 401, no cache outcome, its error code', async () => {
    const { points, dataset } = recordingDataset();
    const app = createApp();
    await consoleOf(async () => {
      const res = await call(
        app,
        '/v1/classify',
        { method: 'POST', headers: auth('wrong-key') },
        {
          ...env,
          ANALYTICS: dataset,
        },
      );
      expect(res.status).toBe(401);
      // The client still gets the whole body the edge read its code from.
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    });
    expect(points).toEqual([
      {
        indexes: ['/v1/classify'],
        blobs: ['/v1/classify', '4xx', 'none', 'none', 'unauthorized', '', ''],
        doubles: [expect.any(Number), 0, 401],
      },
    ]);
  });

  it('names the route pattern (never the raw path or the id) and a lookup miss as MISS with not_found', async () => {
    const { points, dataset } = recordingDataset();
    const app = createApp();
    const id = 'e'.repeat(64);
    const e: Env = { ...env, ANALYTICS: dataset };
    await consoleOf(async () => {
      expect((await call(app, `/v1/explanations/${id}`, { headers: auth() }, e)).status).toBe(404);
      expect((await call(app, '/no/such/route', {}, e)).status).toBe(404);
    });
    expect(points.map((p) => [p.indexes, p.blobs, p.doubles?.[2]])).toEqual([
      [['/v1/explanations/:id'], ['/v1/explanations/:id', '4xx', 'MISS', 'none', 'not_found', '', ''], 404],
      [['unmatched'], ['unmatched', '4xx', 'none', 'none', 'not_found', '', ''], 404],
    ]);
    expect(JSON.stringify(points)).not.toContain(id);
  });

  it('never holds the API key, the HMAC secret, a key hash or the request id', async () => {
    const { points, dataset } = recordingDataset();
    const app = createApp();
    const e: Env = { ...env, ANALYTICS: dataset };
    await consoleOf(async () => {
      await call(app, '/v1/classify', withId(frameBody(input(7202)), 'ae-secret-check-1'), e);
      await call(app, '/v1/classify', withId(frameBody(input(7202)), 'ae-secret-check-2'), e);
      await call(
        app,
        '/v1/classify',
        withId({ method: 'POST', headers: auth('wrong-key') }, 'ae-secret-check-3'),
        e,
      );
    });
    expect(points).toHaveLength(3);
    const text = JSON.stringify(points);
    for (const secret of [
      KEY,
      'wrong-key',
      HMAC_SECRET,
      'ae-secret-check',
      'Bearer',
      ...env.API_KEY_HASHES!.split(','),
    ])
      expect(text).not.toContain(secret);
  });

  it('a throwing writeDataPoint changes nothing the client sees; it is logged once, without secrets', async () => {
    const app = createApp();
    const e: Env = {
      ...env,
      ANALYTICS: {
        writeDataPoint() {
          throw new Error('dataset unavailable');
        },
      },
    };
    let body: unknown;
    const { logs, warnings } = await consoleOf(async () => {
      const res = await call(app, '/v1/classify', withId(frameBody(input(7203)), 'ae-throw'), e);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('MISS');
      expect(res.headers.get('x-request-id')).toBe('ae-throw');
      body = await res.json();
    });
    expect(body).toHaveProperty('prediction');
    expect(logs.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ id: 'ae-throw', status: 200 }),
    ]);
    expect(warnings.map((w) => JSON.parse(w))).toEqual([
      { event: 'analytics_write_failed', route: '/v1/classify', error: 'dataset unavailable' },
    ]);
    for (const w of warnings) for (const s of [KEY, HMAC_SECRET]) expect(w).not.toContain(s);
  });

  it('without the binding: nothing is written, nothing fails, nothing is warned', async () => {
    const { points, dataset } = recordingDataset();
    const app = createApp();
    // The dataset under a name the edge does not read: the edge must not go looking for one.
    const e = { ...env, ANALYTICS: undefined, ANALYTICS_DATASET: dataset } as Env;
    const { logs, warnings } = await consoleOf(async () => {
      expect((await call(app, '/v1/classify', withId(frameBody(input(7204)), 'ae-off'), e)).status).toBe(200);
      expect((await call(app, '/v1/classify', { method: 'POST' }, e)).status).toBe(401);
    });
    expect(points).toEqual([]);
    expect(warnings).toEqual([]);
    expect(logs.map((l) => (JSON.parse(l) as { status: number }).status)).toEqual([200, 401]);
  });
});
