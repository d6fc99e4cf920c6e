// Edge latency under `wrangler dev` against the real backend on loopback: a cache hit versus a miss,
// and the edge's overhead on a miss versus calling the backend directly (same inputs, same run).
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, signRequest, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { SHIPPED_MODEL, startLocalStack } from '../scripts/local-stack';
import { freePort } from '../test/helpers/backend-process';
import type { BenchResult } from './measure';

const N = Number(process.env.BENCH_EDGE_REQUESTS ?? 200);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Server-Timing durations by name (ms), summed over the run's responses. */
type Timings = Map<string, number[]>;

async function timed(
  n: number,
  send: (i: number) => Promise<Response>,
  check: (r: Response) => void,
  timings?: Timings,
) {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await send(i);
    await r.arrayBuffer();
    times.push(performance.now() - t0);
    check(r);
    for (const m of (r.headers.get('server-timing') ?? '').matchAll(/(\w+);dur=([\d.]+)/g)) {
      timings?.set(m[1]!, [...(timings.get(m[1]!) ?? []), Number(m[2])]);
    }
  }
  return times.sort((a, b) => a - b);
}

export async function benchEdge(modelDir?: string): Promise<BenchResult[]> {
  const dir = modelDir ?? (existsSync(join(SHIPPED_MODEL, 'manifest.json')) ? SHIPPED_MODEL : undefined);
  if (!dir) throw new Error('bench edge needs a model: commit models/fashion-mnist or pass BENCH_MODEL');
  const stack = await startLocalStack({
    modelDir: dir,
    backendPort: await freePort(),
    edgePort: await freePort(),
    // A fresh KV and Cache API: inputs cached by an earlier run would turn this run's misses into hits.
    persistTo: await mkdtemp(join(tmpdir(), 'pp-bench-edge-')),
  });
  try {
    const m = (await (await fetch(`${stack.edgeUrl}/v1/model`)).json()) as {
      input: { height: number; width: number; channels: number };
    };
    const size = m.input.height * m.input.width * m.input.channels;
    const shape = [1, m.input.height, m.input.width, m.input.channels];
    const frame = (seed: number) =>
      encodeFrame(
        tensor(
          'float32',
          shape,
          Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.1 + seed)),
        ),
      );
    const edge = (body: Uint8Array) =>
      fetch(`${stack.edgeUrl}/v1/classify`, {
        method: 'POST',
        body,
        headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': TENSOR_MEDIA_TYPE },
      });
    const expect = (cache: string) => (r: Response) => {
      if (r.status !== 200 || r.headers.get('x-cache') !== cache)
        throw new Error(`expected 200 ${cache}, got ${r.status} ${r.headers.get('x-cache')}`);
    };
    // Warm both processes (JIT, wasm, manifest cache) before measuring.
    for (let i = 0; i < 20; i++) await (await edge(frame(-1 - i))).arrayBuffer();
    const backend = await timed(
      N,
      async (i) => {
        const body = frame(1e6 + i);
        const headers = await signRequest(stack.secret, { method: 'POST', path: '/invocations', body });
        return fetch(`${stack.backendUrl}/invocations`, {
          method: 'POST',
          body,
          headers: { ...headers, 'content-type': TENSOR_MEDIA_TYPE },
        });
      },
      (r) => {
        if (r.status !== 200) throw new Error(`backend answered ${r.status}`);
      },
    );
    // The floor: a request that touches neither cache nor backend, through the same wrangler proxy.
    const floor = await timed(
      N,
      () => fetch(`${stack.edgeUrl}/healthz`),
      (r) => {
        if (r.status !== 200) throw new Error(`healthz answered ${r.status}`);
      },
    );
    const missTimings: Timings = new Map();
    const miss = await timed(N, (i) => edge(frame(i)), expect('MISS'), missTimings);
    const hot = frame(0); // classified above: a hit from now on
    const hit = await timed(N, () => edge(hot), expect('HIT'));
    const med = (xs: number[] = []) =>
      quantile(
        [...xs].sort((a, b) => a - b),
        0.5,
      ) ?? 0;
    const row = (name: string, t: number[], extra: Record<string, string | number> = {}): BenchResult => ({
      name,
      medianMs: quantile(t, 0.5),
      runs: t.length,
      extra: { p99ms: quantile(t, 0.99).toFixed(2), ...extra },
    });
    const overhead = (quantile(miss, 0.5) - quantile(backend, 0.5)) / quantile(backend, 0.5);
    return [
      row('backend direct (baseline), unique inputs', backend),
      row('edge /healthz (wrangler dev proxy floor)', floor),
      {
        ...row('edge miss (wrangler dev → backend)', miss, {
          overheadVsBackend: `${(100 * overhead).toFixed(1)}%`,
          // Inside the Worker (Server-Timing, p50): the cache lookups that missed and the backend call.
          lookupMs: med(missTimings.get('cache')),
          backendSeenByEdgeMs: med(missTimings.get('backend')),
        }),
        ratio: quantile(backend, 0.5) / quantile(miss, 0.5),
      },
      {
        ...row('edge hit (cache)', hit, {
          hitVsMiss: `${(quantile(miss, 0.5) / quantile(hit, 0.5)).toFixed(1)}x faster`,
        }),
        ratio: quantile(backend, 0.5) / quantile(hit, 0.5),
      },
    ];
  } finally {
    await stack.stop();
  }
}
