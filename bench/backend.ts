// Backend throughput and latency at concurrency 1, 8, 32, with and without micro-batching (autocannon
// against the real `protopool serve` process on loopback), plus the tensor count before and after.
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, signRequest, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import autocannon from 'autocannon';
import { startBackend, trainTinyModel } from '../test/helpers/backend-process';
import { seededArray } from '../test/helpers/random';
import type { BenchResult } from './measure';

const SECRET = 'bench-secret';
const SECONDS = Number(process.env.BENCH_BACKEND_SECONDS ?? 8);
const TENSOR_CHECK_REQUESTS = Number(process.env.BENCH_BACKEND_TENSOR_CHECK ?? 10_000);

async function ping(url: string): Promise<{ tensors: number; requests: number; batches: number }> {
  return (await fetch(`${url}/ping`)).json() as Promise<{
    tensors: number;
    requests: number;
    batches: number;
  }>;
}

export async function benchBackend(modelDir?: string): Promise<BenchResult[]> {
  const shipped = join(import.meta.dirname, '..', 'models', 'fashion-mnist');
  const dir =
    modelDir ??
    (existsSync(join(shipped, 'manifest.json'))
      ? shipped
      : await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-bench-'))));
  const body = encodeFrame(tensor('float32', [1, 28, 28, 1], seededArray(784, 3)));
  // A signature stays valid for 300 s: one per run segment.
  const signedHeaders = async () => ({
    ...(await signRequest(SECRET, { method: 'POST', path: '/invocations', body })),
    'content-type': TENSOR_MEDIA_TYPE,
  });
  const rows: BenchResult[] = [];
  const baseline = new Map<number, number>();
  for (const [label, args] of [
    ['sequential (no batching)', ['--max-wait-ms', '0', '--max-batch', '1']],
    ['micro-batching (≤32, 5 ms)', ['--max-wait-ms', '5', '--max-batch', '32']],
  ] as const) {
    const backend = await startBackend(['--model', dir, '--max-queue', '1024', ...args], {
      PROTOPOOL_HMAC_SECRET: SECRET,
      // Both modes run on the same engine: BENCH_BACKEND_THREADS=2 gives wasm's XNNPACK both cores.
      PROTOPOOL_WASM_THREADS: process.env.BENCH_BACKEND_THREADS ?? '1',
    });
    try {
      const before = await ping(backend.url);
      for (const connections of [1, 8, 32]) {
        const level = await ping(backend.url);
        const r = await autocannon({
          url: `${backend.url}/invocations`,
          method: 'POST',
          headers: await signedHeaders(),
          body: Buffer.from(body),
          connections,
          duration: SECONDS,
        });
        const rps = r.requests.average;
        const done = await ping(backend.url);
        const meanBatch = (done.requests - level.requests) / Math.max(1, done.batches - level.batches);
        if (!baseline.has(connections)) baseline.set(connections, rps);
        rows.push({
          name: `${label}, concurrency ${connections}`,
          medianMs: r.latency.p50,
          runs: r.requests.total,
          ratio: rps / baseline.get(connections)!,
          extra: {
            'req/s': rps.toFixed(1),
            p99ms: r.latency.p99,
            meanBatch: meanBatch.toFixed(1),
            non2xx: r.non2xx,
            errors: r.errors,
          },
        });
      }
      // A fixed 10,000 more at concurrency 32: the tensor count must end where it started.
      const soak = await autocannon({
        url: `${backend.url}/invocations`,
        method: 'POST',
        headers: await signedHeaders(),
        body: Buffer.from(body),
        connections: 32,
        amount: TENSOR_CHECK_REQUESTS,
      });
      if (soak.non2xx || soak.errors)
        throw new Error(`tensor check: ${soak.non2xx} non-2xx, ${soak.errors} errors`);
      const after = await ping(backend.url);
      rows.push({
        name: `${label}: tensors before → after`,
        medianMs: 0,
        runs: after.requests - before.requests,
        extra: {
          tensors: `${before.tensors}→${after.tensors}`,
          requests: after.requests - before.requests,
        },
      });
    } finally {
      await backend.stop();
    }
  }
  return rows;
}
