// Edge latency under `wrangler dev` against the real backend on loopback: a cache hit versus a miss,
// and the edge's overhead on a miss versus calling the backend directly (same inputs, same run).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { encodeFrame, signRequest, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { SHIPPED_MODEL, startLocalStack } from '../scripts/local-stack';
import { CLI, freePort } from '../test/helpers/backend-process';
import type { BenchResult } from './measure';

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Server-Timing durations by name (ms), summed over the run's responses. */
type Timings = Map<string, number[]>;

type Kind = 'backend' | 'floor' | 'miss' | 'hit';

/**
 * Times kinds of request in interleaved rounds (the order rotating each round), so drift on a noisy
 * machine (another process, a GC, thermal) lands on all of them alike instead of on one phase.
 */
async function interleaved<K extends Kind>(
  n: number,
  send: Record<K, (i: number) => Promise<Response>>,
  check: Record<K, (r: Response) => void>,
  timings: Partial<Record<K, Timings>> = {},
): Promise<Record<K, number[]>> {
  const kinds = Object.keys(send) as K[];
  const times = Object.fromEntries(kinds.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < kinds.length; j++) {
      const kind = kinds[(i + j) % kinds.length]!;
      const t0 = performance.now();
      const r = await send[kind](i);
      await r.arrayBuffer();
      times[kind].push(performance.now() - t0);
      check[kind](r);
      for (const m of (r.headers.get('server-timing') ?? '').matchAll(/(\w+);dur=([\d.]+)/g)) {
        const t = timings[kind];
        t?.set(m[1]!, [...(t.get(m[1]!) ?? []), Number(m[2])]);
      }
    }
  }
  for (const k of kinds) times[k].sort((a, b) => a - b);
  return times;
}

/**
 * A model of the published CUB shape (ResNet-50 at 224 px, 202 prototypes, 10 slots per class, depth 256)
 * with untrained weights: latency does not depend on the weights, and the shipped demo model is far
 * smaller than what the product serves, which makes every fixed cost of the edge look large.
 */
async function productionSizeModel(dir: string): Promise<string> {
  const config = join(dir, 'config.json');
  await writeFile(
    config,
    JSON.stringify({
      model: { backbone: 'resnet50', prototypes: 202, slotsPerClass: 10, depth: 256 },
      epochs: { warmup: 0, joint: 0, lastLayer: 0 },
      batchSize: 8,
    }),
  );
  // The generated parts data at 224 px, a few images: only projection and the final evaluation read them.
  const data = 'parts:0?size=224&classes=15&train=2&test=1';
  await promisify(execFile)(
    process.execPath,
    [CLI, 'train', '--data', data, '--config', config, '--out', dir],
    {
      maxBuffer: 64 << 20,
    },
  );
  return join(dir, 'model');
}

/** The edge bench on the shipped model, then on a production-size one (`BENCH_EDGE_PRODUCTION=0` skips it). */
export async function benchEdgeAll(modelDir?: string): Promise<BenchResult[]> {
  const rows = await benchEdge(modelDir);
  if (process.env.BENCH_EDGE_PRODUCTION === '0') return rows;
  const dir = await mkdtemp(join(tmpdir(), 'pp-bench-resnet50-'));
  try {
    const big = await benchEdge(await productionSizeModel(dir), {
      requests: Number(process.env.BENCH_EDGE_PRODUCTION_REQUESTS ?? 60),
      label: 'resnet50 224px',
    });
    return [...rows, ...big];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchEdge(
  modelDir?: string,
  o: { requests?: number; label?: string } = {},
): Promise<BenchResult[]> {
  const N = o.requests ?? Number(process.env.BENCH_EDGE_REQUESTS ?? 200);
  const dir = modelDir ?? (existsSync(join(SHIPPED_MODEL, 'manifest.json')) ? SHIPPED_MODEL : undefined);
  if (!dir) throw new Error('bench edge needs a model: commit models/fashion-mnist or pass BENCH_MODEL');
  const stack = await startLocalStack({
    models: dir,
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
    // Warm both processes (JIT, wasm, manifest cache) before measuring; the last warm-up input is the hit.
    for (let i = 0; i < 20; i++) await (await edge(frame(-1 - i))).arrayBuffer();
    const hot = frame(-20);
    const missTimings: Timings = new Map();
    const ok = (what: string) => (r: Response) => {
      if (r.status !== 200) throw new Error(`${what} answered ${r.status}`);
    };
    // Two groups: the backend calls (direct and through the edge) with each other, and the light requests
    // with each other. Mixed in one round, a hit would queue behind the CPU a model call just left busy
    // (backend, edge and client share this machine's cores; in production they do not).
    const { backend, miss } = await interleaved(
      N,
      {
        backend: async (i) => {
          const body = frame(1e6 + i);
          const headers = await signRequest(stack.secret, { method: 'POST', path: '/invocations', body });
          return fetch(`${stack.backendUrl}/invocations`, {
            method: 'POST',
            body,
            headers: { ...headers, 'content-type': TENSOR_MEDIA_TYPE },
          });
        },
        miss: (i) => edge(frame(i)),
      },
      { backend: ok('backend'), miss: expect('MISS') },
      { miss: missTimings },
    );
    const { floor, hit } = await interleaved(
      N,
      {
        // The floor: a request that touches neither cache nor backend, through the same wrangler proxy.
        floor: () => fetch(`${stack.edgeUrl}/healthz`),
        hit: () => edge(hot),
      },
      { floor: ok('healthz'), hit: expect('HIT') },
    );
    const med = (xs: number[] = []) =>
      quantile(
        [...xs].sort((a, b) => a - b),
        0.5,
      ) ?? 0;
    const row = (name: string, t: number[], extra: Record<string, string | number> = {}): BenchResult => ({
      name: o.label ? `[${o.label}] ${name}` : name,
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
