// `npm run soak`: the backend (shipped model) and the edge (wrangler dev) on loopback under a seeded mix of
// cache hits, lookups by id, misses (distinct tensors) and bad requests, driven by autocannon; stops by itself
// and reports throughput, latency, status counts per kind, backend RSS and tfjs tensors at start and end.
// Exits 1 if any request got an unexpected status (any 5xx among them), the tensor count grew, or a secret
// or API key appeared in a log.
// Then reads the backend's GET /metrics before and after the run and fails unless they agree with what the
// soak sent: the edge forwards only its cache misses, so protopool_requests_total{route="/invocations"} grows
// by exactly the misses (the soak's count, and the edge's MISS request lines), by status, and nothing else
// but the soak's own /ping and /metrics calls; protopool_batch_size_sum grows by the same number (one
// classification per miss) and its _count by the batches the backend's request log lines describe (each
// classification logs its batch's size k, so a batch is k lines of 1/k), so the means agree.
//
//   SOAK_REQUESTS=20000 SOAK_CONCURRENCY=32 SOAK_SEED=1 npm run soak
import autocannon from 'autocannon';
import { mulberry32 } from '../../gpu-backend/src/util/random';
import {
  allLines,
  Checks,
  freePort,
  inputFrame,
  jsonEvents,
  type MetricSample,
  machine,
  metric,
  newCredentials,
  ping,
  quantile,
  scrapeMetrics,
  startBackend,
  startEdge,
  Tally,
  TENSOR_MEDIA_TYPE,
  treeRssMb,
} from './common';

const REQUESTS = Number(process.env.SOAK_REQUESTS ?? 20_000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 32);
const SEED = Number(process.env.SOAK_SEED ?? 1);
const WARM = 16;

type Kind = 'hit' | 'lookup' | 'miss' | 'bad';
interface Planned {
  kind: Kind;
  expect: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

async function main(): Promise<number> {
  const checks = new Checks();
  console.log(`soak: ${REQUESTS} requests, concurrency ${CONCURRENCY}, seed ${SEED}; ${machine()}`);
  const { secret, apiKey } = newCredentials();
  const backendPort = await freePort();
  const backend = await startBackend({ port: backendPort, secret });
  const edge = await startEdge({
    port: await freePort(),
    backendUrl: backend.url,
    secret,
    apiKey,
    // The manifest is fetched once, at warm-up: /invocations during the run are then the misses alone.
    vars: { MANIFEST_TTL_SECONDS: '86400' },
    // The edge's per-request JSON lines (console.log), counted against /metrics below.
    logLevel: 'log',
  });
  const backendLog = allLines(backend);
  const edgeLog = allLines(edge);
  const auth = { authorization: `Bearer ${apiKey}` };
  const frameHeaders = { ...auth, 'content-type': TENSOR_MEDIA_TYPE };
  try {
    // Warm-up: the inputs later requested as hits and looked up by id.
    const ids: string[] = [];
    const warm: Buffer[] = [];
    for (let i = 0; i < WARM; i++) {
      const body = Buffer.from(inputFrame(10_000 + i));
      const r = await fetch(`${edge.url}/v1/classify`, { method: 'POST', body, headers: frameHeaders });
      if (r.status !== 200) throw new Error(`warm-up request answered ${r.status}: ${await r.text()}`);
      ids.push(((await r.json()) as { id: string }).id);
      warm.push(body);
    }
    await new Promise((r) => setTimeout(r, 500)); // background cache writes land
    const start = await ping(backend.url);
    const metricsStart = await scrapeMetrics(backend.url);
    const [backendLinesStart, edgeLinesStart] = [backendLog.lines().length, edgeLog.lines().length];
    const rssStart = treeRssMb(backend.child.pid!);
    const edgeRssStart = treeRssMb(edge.child.pid!);
    console.log(
      `start: backend ${start?.engine}, ${start?.tensors} tensors, RSS ${rssStart} MB; edge RSS ${edgeRssStart} MB`,
    );

    const rand = mulberry32(SEED);
    let misses = 0;
    const bad: (() => Omit<Planned, 'kind'>)[] = [
      () => ({
        expect: 400,
        method: 'POST',
        path: '/v1/classify',
        headers: frameHeaders,
        body: Buffer.from(inputFrame(1, [1, 28, 27, 1])),
      }),
      () => ({
        expect: 415,
        method: 'POST',
        path: '/v1/classify',
        headers: { ...auth, 'content-type': 'text/plain' },
        body: Buffer.from('hello'),
      }),
      () => ({
        expect: 400,
        method: 'POST',
        path: '/v1/classify',
        headers: frameHeaders,
        body: Buffer.from('PPTF garbage'),
      }),
      () => ({
        expect: 401,
        method: 'POST',
        path: '/v1/classify',
        headers: { 'content-type': TENSOR_MEDIA_TYPE },
        body: warm[0]!,
      }),
      () => ({ expect: 400, method: 'GET', path: '/v1/explanations/..%2F..%2Fetc', headers: auth }),
      () => ({ expect: 404, method: 'GET', path: `/v1/explanations/${'0'.repeat(64)}`, headers: auth }),
      () => ({
        expect: 400,
        method: 'POST',
        path: '/v1/classify?topK=99',
        headers: frameHeaders,
        body: warm[1]!,
      }),
      () => ({
        expect: 400,
        method: 'POST',
        path: '/v1/classify',
        headers: { ...auth, 'content-type': 'image/png' },
        body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]),
      }),
    ];
    const plan = (): Planned => {
      const u = rand();
      if (u < 0.45)
        return {
          kind: 'hit',
          expect: 200,
          method: 'POST',
          path: '/v1/classify',
          headers: frameHeaders,
          body: warm[Math.floor(rand() * WARM)]!,
        };
      if (u < 0.6)
        return {
          kind: 'lookup',
          expect: 200,
          method: 'GET',
          path: `/v1/explanations/${ids[Math.floor(rand() * WARM)]}`,
          headers: auth,
        };
      if (u < 0.85)
        return {
          kind: 'miss',
          expect: 200,
          method: 'POST',
          path: '/v1/classify',
          headers: frameHeaders,
          body: Buffer.from(inputFrame(1_000_000 + SEED * 100_000 + misses++)),
        };
      return { kind: 'bad', ...bad[Math.floor(rand() * bad.length)]!() };
    };

    const tally = new Tally();
    const latency: Record<Kind, number[]> = { hit: [], lookup: [], miss: [], bad: [] };
    let rssPeak = rssStart;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, treeRssMb(backend.child.pid!));
    }, 1000);
    type Ctx = { planned?: Planned; t0?: number };
    const t0 = performance.now();
    const result = await autocannon({
      url: edge.url,
      connections: CONCURRENCY,
      amount: REQUESTS,
      timeout: 30,
      requests: [
        {
          setupRequest: (req, context) => {
            const ctx = context as Ctx;
            const p = plan();
            ctx.planned = p;
            ctx.t0 = performance.now();
            return { ...req, method: p.method as 'GET', path: p.path, headers: p.headers, body: p.body };
          },
          onResponse: (status, _body, context) => {
            const ctx = context as Ctx;
            const p = ctx.planned!;
            latency[p.kind].push(performance.now() - ctx.t0!);
            tally.add(`${p.kind} ${status}${status === p.expect ? '' : ` (expected ${p.expect})`}`);
          },
        },
      ],
    });
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 1000));
    const end = await ping(backend.url);
    const metricsEnd = await scrapeMetrics(backend.url);
    const rssEnd = treeRssMb(backend.child.pid!);
    const edgeRssEnd = treeRssMb(edge.child.pid!);

    const answered = Object.values(tally.counts).reduce((a, b) => a + b, 0);
    console.log('\nresults');
    console.log(
      `  requests answered ${answered} of ${REQUESTS} in ${seconds.toFixed(1)} s: ${(answered / seconds).toFixed(0)} req/s`,
    );
    console.log(
      `  autocannon latency (all kinds): p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`,
    );
    for (const k of ['hit', 'lookup', 'miss', 'bad'] as Kind[]) {
      const l = latency[k];
      console.log(
        `  ${k.padEnd(6)} n=${l.length} p50 ${quantile(l, 0.5).toFixed(1)} ms, p99 ${quantile(l, 0.99).toFixed(1)} ms`,
      );
    }
    console.log('  status by kind:');
    for (const [k, n] of Object.entries(tally.counts).sort()) console.log(`    ${k}: ${n}`);
    console.log(
      `  autocannon: errors ${result.errors}, timeouts ${result.timeouts}, non2xx ${result.non2xx}`,
    );
    console.log(
      `  backend: tensors ${start?.tensors} → ${end?.tensors}, RSS ${rssStart} → ${rssEnd} MB (peak ${rssPeak} MB), queue ${end?.queue}`,
    );
    console.log(`  edge (wrangler + workerd): RSS ${edgeRssStart} → ${edgeRssEnd} MB`);
    console.log(`  machine at end: ${machine()}`);

    const unexpected = Object.entries(tally.counts).filter(([k]) => k.includes('expected'));
    checks.check(
      answered === REQUESTS && result.errors === 0 && result.timeouts === 0,
      `every request answered (${answered}/${REQUESTS}, ${result.errors} errors, ${result.timeouts} timeouts)`,
    );
    checks.check(
      unexpected.length === 0,
      `every answer had the expected status${unexpected.length ? `: ${JSON.stringify(unexpected)}` : ''}`,
    );
    checks.check(!Object.keys(tally.counts).some((k) => / 5\d\d/.test(k)), 'no 5xx');
    checks.check(
      end !== null && start !== null && end.tensors === start.tensors,
      `backend tfjs tensors flat (${start?.tensors} → ${end?.tensors})`,
    );
    const logs = backend.logs.join('') + edge.logs.join('');
    checks.check(
      !logs.includes(secret) && !logs.includes(apiKey),
      'neither the HMAC secret nor the API key appears in backend or edge logs',
    );
    metricsAgree(checks, {
      start: metricsStart,
      end: metricsEnd,
      missesOk: tally.get('miss 200'),
      edgeLines: jsonEvents(edgeLog.lines().slice(edgeLinesStart), 'request'),
      backendLines: jsonEvents(backendLog.lines().slice(backendLinesStart), 'request'),
    });
    return checks.failed.length ? 1 : 0;
  } finally {
    await Promise.all([edge.stop(), backend.stop()]);
  }
}

/** The backend's /metrics over the run against what the soak sent, the edge logged and the backend logged. */
function metricsAgree(
  checks: Checks,
  o: {
    start: MetricSample[];
    end: MetricSample[];
    missesOk: number;
    edgeLines: Record<string, unknown>[];
    backendLines: Record<string, unknown>[];
  },
): void {
  const key = (s: MetricSample) => `${s.labels.route} ${s.labels.status}`;
  const delta = new Map<string, number>();
  for (const s of o.end.filter((m) => m.name === 'protopool_requests_total'))
    delta.set(key(s), s.value - metric(o.start, s.name, s.labels));
  for (const [k, v] of [...delta]) if (v === 0) delta.delete(k);
  const forwarded = o.edgeLines.filter((l) => l.route === '/v1/classify' && l.cache === 'MISS');
  const forwardedByStatus = new Map<string, number>();
  for (const l of forwarded) {
    const k = `/invocations ${l.status}`;
    forwardedByStatus.set(k, (forwardedByStatus.get(k) ?? 0) + 1);
  }
  // The soak's own calls to the backend in the window: the end /ping, and the first scrape (counted once
  // answered, so it shows in the second).
  const expected = new Map([...forwardedByStatus, ['/ping 200', 1], ['/metrics 200', 1]]);
  const show = (m: Map<string, number>) =>
    [...m]
      .sort()
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ');
  console.log('\n/metrics over the run (backend, GET /metrics before and after)');
  console.log(`  protopool_requests_total growth by route, status: ${show(delta)}`);
  console.log(
    `  expected: the edge's ${forwarded.length} classify MISS lines (its misses, forwarded; the soak counted ${o.missesOk} misses 200) + the soak's /ping and /metrics: ${show(expected)}`,
  );
  checks.check(
    show(delta) === show(expected) && forwarded.length === o.missesOk,
    `backend protopool_requests_total by route and status = what the edge forwarded (${delta.get('/invocations 200') ?? 0} /invocations 200 = ${forwarded.length} edge MISS lines = ${o.missesOk} soak misses 200) + the soak's own calls`,
  );
  const d = (name: string) => metric(o.end, name) - metric(o.start, name);
  const [sum, count] = [d('protopool_batch_size_sum'), d('protopool_batch_size_count')];
  const batched = o.backendLines.filter((l) => typeof l.batchSize === 'number');
  const logBatches = batched.reduce((a, l) => a + 1 / (l.batchSize as number), 0);
  const logMean = batched.length / logBatches;
  console.log(
    `  protopool_batch_size: _sum +${sum}, _count +${count}, mean ${(sum / count).toFixed(3)}; backend request log: ${batched.length} classifications in ${logBatches.toFixed(3)} batches, mean ${logMean.toFixed(3)}`,
  );
  checks.check(
    sum === o.missesOk &&
      batched.length === sum &&
      Math.abs(logBatches - count) < 1e-6 &&
      Math.abs(sum / count - logMean) < 1e-6,
    `batch-size histogram agrees: mean _sum/_count ${(sum / count).toFixed(3)} = ${logMean.toFixed(3)} from the backend's request log (${sum} classifications = the soak's misses, ${count} batches)`,
  );
}

process.exit(await main());
