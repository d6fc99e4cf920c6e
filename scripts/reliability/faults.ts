// `npm run faults [-- kill-backend slow-backend kill-train checkpoint model-switch cache-outage]`: fault injection on
// loopback, each scenario checked and reported; exits 1 if any check fails.
//   kill-backend  SIGKILL the backend under load: new inputs get 503/504 within the edge timeout, cached
//                 lookups keep answering 200; restart it and traffic recovers without restarting the edge.
//   slow-backend  a delaying stand-in in front of the backend: misses get 504 at the configured timeout,
//                 hits stay fast, nothing piles up, and traffic recovers when the delay goes.
//   kill-train    SIGKILL `protopool train` at seeded random moments (≥ 5 times), `--resume` each time: at most
//                 one epoch lost, every checkpoint left behind loads, the final model equals an uninterrupted
//                 run's bit for bit and evaluates.
//   checkpoint    truncated / corrupted checkpoints and a bad LATEST are refused with a message naming the file;
//                 the leftovers of an interrupted save are ignored and the last good checkpoint is used.
//   model-switch  repoint the backend's --model symlink and SIGHUP it under load through the edge: every request
//                 answers 200, /ping never fails, the edge serves the new version within MANIFEST_TTL_SECONDS,
//                 nothing is cached under the old version's id with the new model's answer, the old model is
//                 freed; a broken directory then keeps the new model serving.
//   cache-outage  the edge's KV binding and Cache API fail every read and write for 6 s under load (the
//                 dev-only FAULT_INJECTION var + a per-request header, edge/src/cache/fault-injection.ts): 0 5xx,
//                 every classification answered 200 by the backend as a MISS (its /metrics agree), lookups by id
//                 404; one cache_fault line per store per read and per write, and a MISS request line per
//                 request, in the edge's log; afterwards hits return and nothing from the outage was stored.
// FAULTS_SEED (default 7) seeds every random choice.
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explanationId } from '@protopool/shared';
import { FAULT_INJECTION_HEADER } from '../../edge/src/cache/fault-injection';
import { initEngine } from '../../gpu-backend/src/engine';
import { latestCheckpoint, loadCheckpoint } from '../../gpu-backend/src/train/checkpoint';
import { mulberry32 } from '../../gpu-backend/src/util/random';
import { TINY_CONFIG, trainTinyModel } from '../../test/helpers/backend-process';
import {
  allLines,
  Checks,
  CLI,
  freePort,
  inputFrame,
  jsonEvents,
  machine,
  metric,
  newCredentials,
  type Proc,
  ping,
  quantile,
  ROOT,
  scrapeMetrics,
  sleep,
  startBackend,
  startEdge,
  Tally,
  TENSOR_MEDIA_TYPE,
} from './common';

const SEED = Number(process.env.FAULTS_SEED ?? 7);
const checks = new Checks();
let fresh = 5_000_000 + SEED * 100_000;

interface Sample {
  kind: 'miss' | 'hit' | 'lookup';
  status: number;
  ms: number;
  startedAt: number;
  /** The answer's modelVersion (200s only). */
  version?: string;
  /** The inputFrame seed of a miss. */
  seed?: number;
  /** The answer's X-Cache (HIT, MISS) when it had one. */
  cache?: string;
  /** The X-Request-Id sent (when `o.ids` names a prefix): the edge logs the request under it. */
  rid?: string;
}

/** Keeps `concurrency` workers sending a mix of misses, hits and lookups to the edge for `ms`. */
async function load(
  edge: string,
  apiKey: string,
  warm: { frames: Uint8Array[]; ids: string[] },
  ms: number,
  concurrency = 8,
  o: { headers?: Record<string, string>; ids?: string } = {},
) {
  const samples: Sample[] = [];
  let n = 0;
  const until = Date.now() + ms;
  const rand = mulberry32(SEED + samples.length);
  const worker = async () => {
    while (Date.now() < until) {
      const rid = o.ids ? `${o.ids}-${n++}` : undefined;
      const auth = {
        authorization: `Bearer ${apiKey}`,
        ...o.headers,
        ...(rid && { 'x-request-id': rid }),
      };
      const u = rand();
      const kind: Sample['kind'] = u < 0.34 ? 'miss' : u < 0.67 ? 'hit' : 'lookup';
      const t0 = Date.now();
      const seed = kind === 'miss' ? fresh++ : undefined;
      let status = 0;
      let version: string | undefined;
      let cache: string | undefined;
      try {
        const res =
          kind === 'lookup'
            ? await fetch(`${edge}/v1/explanations/${warm.ids[Math.floor(rand() * warm.ids.length)]}`, {
                headers: auth,
              })
            : await fetch(`${edge}/v1/classify`, {
                method: 'POST',
                headers: { ...auth, 'content-type': TENSOR_MEDIA_TYPE },
                body:
                  seed !== undefined
                    ? inputFrame(seed)
                    : warm.frames[Math.floor(rand() * warm.frames.length)],
              });
        const text = await res.text();
        status = res.status;
        cache = res.headers.get('x-cache') ?? undefined;
        if (status === 200) version = (JSON.parse(text) as { modelVersion?: string }).modelVersion;
      } catch {
        status = -1; // the connection to the edge itself failed
      }
      samples.push({ kind, status, ms: Date.now() - t0, startedAt: t0, version, seed, cache, rid });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return samples;
}

function summary(name: string, samples: Sample[]): Tally {
  const t = new Tally();
  for (const s of samples) t.add(`${s.kind} ${s.status}`);
  console.log(
    `  ${name}: ${samples.length} requests; ${Object.entries(t.counts)
      .sort()
      .map(([k, n]) => `${k}×${n}`)
      .join(', ')}`,
  );
  return t;
}

async function warmUp(edge: string, apiKey: string, n = 8) {
  const frames: Uint8Array[] = [];
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const body = inputFrame(900_000 + i);
    const res = await fetch(`${edge}/v1/classify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': TENSOR_MEDIA_TYPE },
      body,
    });
    if (res.status !== 200) throw new Error(`warm-up answered ${res.status}: ${await res.text()}`);
    ids.push(((await res.json()) as { id: string }).id);
    frames.push(body);
  }
  await sleep(500);
  return { frames, ids };
}

async function killBackend(): Promise<void> {
  console.log('\n== kill-backend: SIGKILL the backend under load, then restart it');
  const TIMEOUT = 3000;
  const { secret, apiKey } = newCredentials();
  const port = await freePort();
  let backend: Proc = await startBackend({ port, secret });
  const edge = await startEdge({
    port: await freePort(),
    backendUrl: backend.url,
    secret,
    apiKey,
    vars: { BACKEND_TIMEOUT_MS: String(TIMEOUT) },
  });
  const edgePid = edge.child.pid;
  try {
    const warm = await warmUp(edge.url, apiKey);
    summary('healthy (4 s)', await load(edge.url, apiKey, warm, 4000));
    const during = load(edge.url, apiKey, warm, 8000);
    await sleep(1500);
    const killedAt = Date.now();
    backend.child.kill('SIGKILL');
    await backend.stop();
    console.log('  backend SIGKILLed');
    const down = (await during).filter((s) => s.startedAt > killedAt + 200);
    const t = summary('backend down (requests started after the kill)', down);
    const misses = down.filter((s) => s.kind === 'miss');
    const cached = down.filter((s) => s.kind !== 'miss');
    checks.check(
      misses.length > 0 && misses.every((s) => s.status === 503 || s.status === 504),
      `kill-backend: every new input answered 503/504 (${t.get('miss 503')}×503, ${t.get('miss 504')}×504 of ${misses.length})`,
    );
    checks.check(
      Math.max(...misses.map((s) => s.ms)) <= TIMEOUT + 1000,
      `kill-backend: failures answered within the ${TIMEOUT} ms timeout (max ${Math.max(...misses.map((s) => s.ms))} ms, p50 ${quantile(
        misses.map((s) => s.ms),
        0.5,
      )} ms)`,
    );
    checks.check(
      cached.length > 0 && cached.every((s) => s.status === 200),
      `kill-backend: cached hits and lookups kept answering 200 (${cached.filter((s) => s.status === 200).length}/${cached.length})`,
    );
    const restartedAt = Date.now();
    backend = await startBackend({ port, secret });
    console.log(`  backend restarted on the same port in ${Date.now() - restartedAt} ms`);
    let recovered = -1;
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${edge.url}/v1/classify`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': TENSOR_MEDIA_TYPE },
        body: inputFrame(fresh++),
      });
      await res.arrayBuffer();
      if (res.status === 200) {
        recovered = Date.now() - restartedAt;
        break;
      }
      await sleep(100);
    }
    const after = await load(edge.url, apiKey, warm, 4000);
    const ta = summary('after restart (4 s)', after);
    checks.check(
      recovered >= 0 && after.every((s) => s.status === 200),
      `kill-backend: traffic recovered without restarting the edge (first miss 200 ${recovered} ms after the restart began; ${ta.get('miss 200')} misses 200 afterwards)`,
    );
    checks.check(
      edge.child.pid === edgePid && edge.child.exitCode === null,
      'kill-backend: the edge process ran throughout',
    );
  } finally {
    await Promise.all([edge.stop(), backend.stop()]);
  }
}

async function slowBackend(): Promise<void> {
  console.log('\n== slow-backend: a stand-in delaying /invocations in front of the real backend');
  const TIMEOUT = 2000;
  const { secret, apiKey } = newCredentials();
  const backend = await startBackend({ port: await freePort(), secret });
  let delay = 0;
  let open = 0;
  let maxOpen = 0;
  let forwarded = 0;
  const target = new URL(backend.url);
  const proxy = createServer((req: IncomingMessage, res) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    let gone = false;
    res.on('close', () => {
      gone = true;
      open--;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (req.url?.startsWith('/invocations') && delay > 0) await sleep(delay);
      if (gone) return; // the edge gave up: nothing is forwarded, nothing piles up behind
      forwarded++;
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  const proxyPort = await freePort();
  await new Promise<void>((r) => proxy.listen(proxyPort, '127.0.0.1', r));
  const edge = await startEdge({
    port: await freePort(),
    backendUrl: `http://127.0.0.1:${proxyPort}`,
    secret,
    apiKey,
    vars: { BACKEND_TIMEOUT_MS: String(TIMEOUT) },
  });
  try {
    const warm = await warmUp(edge.url, apiKey);
    delay = 10_000;
    console.log(`  delay ${delay} ms, edge timeout ${TIMEOUT} ms`);
    const slow = await load(edge.url, apiKey, warm, 9000, 32);
    const t = summary('slow backend, concurrency 32 (9 s)', slow);
    const misses = slow.filter((s) => s.kind === 'miss');
    const cached = slow.filter((s) => s.kind !== 'miss');
    const ms = misses.map((s) => s.ms);
    checks.check(
      misses.length > 0 && misses.every((s) => s.status === 504),
      `slow-backend: every miss answered 504 (${t.get('miss 504')}/${misses.length})`,
    );
    checks.check(
      Math.min(...ms) >= TIMEOUT - 50 && Math.max(...ms) <= TIMEOUT + 1500,
      `slow-backend: 504 at the timeout (min ${Math.min(...ms)} ms, p50 ${quantile(ms, 0.5)} ms, max ${Math.max(...ms)} ms; timeout ${TIMEOUT} ms)`,
    );
    checks.check(
      cached.every((s) => s.status === 200) &&
        quantile(
          cached.map((s) => s.ms),
          0.99,
        ) < 1000,
      `slow-backend: hits and lookups stayed 200 and fast (p99 ${quantile(
        cached.map((s) => s.ms),
        0.99,
      )} ms)`,
    );
    await sleep(1000);
    const p = await ping(backend.url);
    checks.check(
      open === 0 && p?.queue === 0,
      `slow-backend: no pile-up (stand-in connections open afterwards ${open}, peak ${maxOpen} for 32 clients; ${forwarded} requests forwarded to the backend; backend queue ${p?.queue})`,
    );
    delay = 0;
    const after = await load(edge.url, apiKey, warm, 3000);
    summary('delay removed (3 s)', after);
    checks.check(
      after.every((s) => s.status === 200),
      'slow-backend: traffic recovered once the backend was fast again',
    );
  } finally {
    await edge.stop();
    proxy.close();
    await backend.stop();
  }
}

// The tests' tiny config, with ten epochs of 320 images: long enough to be killed at many points.
const TRAIN_CONFIG = {
  ...TINY_CONFIG,
  epochs: { warmup: 1, joint: 8, lastLayer: 1 },
  limits: { train: 320, test: 64 },
};
const TOTAL_EPOCHS = 10;

function trainArgs(out: string, config: string) {
  return [CLI, 'train', '--data', 'fashion-mnist:embedded', '--out', out, '--config', config, '--json'];
}

async function latestEpoch(out: string): Promise<number> {
  try {
    const name = (await readFile(join(out, 'checkpoints', 'LATEST'), 'utf8')).trim();
    return Number(name.slice('epoch-'.length));
  } catch {
    return 0;
  }
}

async function loggedEpochs(out: string): Promise<number[]> {
  try {
    return (await readFile(join(out, 'train.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string; epoch?: number })
      .filter((e) => e.event === 'epoch')
      .map((e) => e.epoch!);
  } catch {
    return [];
  }
}

let midRun: string | undefined;

async function killTrain(): Promise<void> {
  console.log('\n== kill-train: SIGKILL `protopool train` at seeded random moments, resume each time');
  const dir = await mkdtemp(join(tmpdir(), 'pp-faults-train-'));
  const config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TRAIN_CONFIG));
  const env = { ...process.env, PROTOPOOL_ENGINE: 'wasm' };
  const t0 = Date.now();
  const reference = spawnSync(process.execPath, trainArgs(join(dir, 'reference'), config), {
    env,
    encoding: 'utf8',
  });
  if (reference.status !== 0) throw new Error(`reference run failed: ${reference.stderr}`);
  const refSeconds = (Date.now() - t0) / 1000;
  const refVersion = JSON.parse(await readFile(join(dir, 'reference', 'model', 'manifest.json'), 'utf8'))
    .version as string;
  console.log(`  uninterrupted reference run: ${refSeconds.toFixed(1)} s, model ${refVersion.slice(0, 12)}`);
  await initEngine('wasm');
  const out = join(dir, 'out');
  const rand = mulberry32(SEED);
  const kills: { afterMs: number; latestBefore: number; loggedBefore: number; resumedFrom?: number }[] = [];
  let attempts = 0;
  while (kills.length < 5 && attempts++ < 20) {
    const resume = (await latestEpoch(out)) > 0;
    const child = spawn(process.execPath, [...trainArgs(out, config), ...(resume ? ['--resume'] : [])], {
      env,
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // A random moment within the work left (a resumed run has fewer epochs to go), after the ~2 s start-up.
    const remaining = (refSeconds * 1000 * (TOTAL_EPOCHS - (await latestEpoch(out)))) / TOTAL_EPOCHS;
    const afterMs = Math.round(2000 + rand() * Math.max(2000, remaining * 0.8));
    const finished = await Promise.race([exited.then(() => true), sleep(afterMs).then(() => false)]);
    if (finished) {
      console.log(`  attempt ${attempts}: finished before the kill at ${afterMs} ms`);
      break;
    }
    const latestBefore = await latestEpoch(out);
    const loggedBefore = Math.max(0, ...(await loggedEpochs(out)));
    child.kill('SIGKILL');
    await exited;
    kills.push({ afterMs, latestBefore, loggedBefore });
    // Whatever the kill interrupted, the newest checkpoint on disk is complete and loads.
    const at = await latestCheckpoint(out).catch((e) => `error: ${(e as Error).message}`);
    if (at && !at.startsWith('error')) {
      const { model } = await loadCheckpoint(at);
      model.dispose();
    }
    checks.check(
      at === null || !at.startsWith('error'),
      `kill-train: after kill ${kills.length} (${afterMs} ms in) the last checkpoint (${at ?? 'none yet'}) loads`,
    );
    if (!midRun && latestBefore > 0) {
      midRun = join(dir, 'mid-run-copy');
      await cp(out, midRun, { recursive: true });
    }
  }
  const final = spawnSync(process.execPath, [...trainArgs(out, config), '--resume'], {
    env,
    encoding: 'utf8',
  });
  checks.check(final.status === 0, `kill-train: the final --resume finished (exit ${final.status})`);
  const resumes = (await readFile(join(out, 'train.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; epochsCompleted?: number })
    .filter((e) => e.event === 'resume')
    .map((e) => e.epochsCompleted ?? 0);
  // A kill before the first checkpoint restarts from scratch (no resume event); every other one resumes.
  const resumed = kills.filter((k) => k.latestBefore > 0);
  resumed.forEach((k, i) => {
    k.resumedFrom = resumes[i];
  });
  console.log(
    `  kills: ${kills.map((k) => `${k.afterMs} ms (last checkpoint epoch ${k.latestBefore}, last epoch logged ${k.loggedBefore}, resumed from ${k.resumedFrom ?? 'scratch'})`).join('; ')}`,
  );
  checks.check(kills.length >= 5, `kill-train: killed ${kills.length} times with SIGKILL (seed ${SEED})`);
  checks.check(
    resumes.length === resumed.length &&
      resumed.every((k) => k.resumedFrom! >= k.latestBefore && k.loggedBefore - k.resumedFrom! <= 1),
    `kill-train: each resume started from the newest checkpoint; epochs lost per kill: ${resumed.map((k) => Math.max(0, k.loggedBefore - k.resumedFrom!)).join(', ')} completed (+ the one running)`,
  );
  const version = JSON.parse(await readFile(join(out, 'model', 'manifest.json'), 'utf8')).version as string;
  checks.check(
    version === refVersion,
    `kill-train: final model equals the uninterrupted run bit for bit (${version.slice(0, 12)} vs ${refVersion.slice(0, 12)})`,
  );
  const evaluation = spawnSync(
    process.execPath,
    [CLI, 'evaluate', '--model', out, '--data', 'fashion-mnist:embedded', '--limit', '64', '--json'],
    { env, encoding: 'utf8' },
  );
  const metrics = evaluation.status === 0 ? JSON.parse(evaluation.stdout.trim().split('\n').at(-1)!) : null;
  checks.check(
    metrics !== null && metrics.examples === 64,
    `kill-train: the final model loads and evaluates (accuracy ${metrics?.accuracy} on 64 test images)`,
  );
}

async function checkpointFaults(): Promise<void> {
  console.log('\n== checkpoint: corrupted, truncated and half-written checkpoints');
  if (!midRun) throw new Error('checkpoint scenario needs the mid-run copy kill-train makes (run both)');
  const dir = await mkdtemp(join(tmpdir(), 'pp-faults-ckpt-'));
  const config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TRAIN_CONFIG));
  const env = { ...process.env, PROTOPOOL_ENGINE: 'wasm' };
  const resume = async (name: string, damage: (out: string, ckpt: string) => Promise<void>) => {
    const out = join(dir, name);
    await cp(midRun!, out, { recursive: true });
    const ckpt = (await latestCheckpoint(out))!;
    await damage(out, ckpt);
    const r = spawnSync(process.execPath, [...trainArgs(out, config), '--resume'], { env, encoding: 'utf8' });
    return { ...r, ckpt, out };
  };
  for (const [name, file, damage, message] of [
    [
      'truncated weights',
      'weights.bin',
      (b: Buffer) => b.subarray(0, Math.floor(b.length / 2)),
      /corrupt or truncated \(checksum mismatch/,
    ],
    [
      'flipped byte in head.bin',
      'head.bin',
      (b: Buffer) => Buffer.from(b.map((v, i) => (i === 17 ? v ^ 0xff : v))),
      /corrupt or truncated \(checksum mismatch/,
    ],
    [
      'truncated manifest.json',
      'manifest.json',
      (b: Buffer) => b.subarray(0, 100),
      /manifest\.json: not valid JSON/,
    ],
    ['emptied optimizer.bin', 'optimizer.bin', () => Buffer.alloc(0), /optimizer\.bin: corrupt or truncated/],
  ] as const) {
    const r = await resume(name.replace(/\W+/g, '-'), async (_out, ckpt) => {
      await writeFile(join(ckpt, file), damage(await readFile(join(ckpt, file))));
    });
    const said = r.stderr.trim().split('\n').at(-1) ?? '';
    checks.check(
      r.status !== 0 && message.test(said) && said.includes(join(r.ckpt, file)),
      `checkpoint: ${name} refused (exit ${r.status}): ${said.replace(dir, '<tmp>')}`,
    );
  }
  const badPointer = await resume('bad-latest', async (out) =>
    writeFile(join(out, 'checkpoints', 'LATEST'), '../../etc\n'),
  );
  const said = badPointer.stderr.trim().split('\n').at(-1) ?? '';
  checks.check(
    badPointer.status !== 0 && /LATEST: does not name a checkpoint/.test(said),
    `checkpoint: a LATEST naming "../../etc" refused (exit ${badPointer.status}): ${said.replace(dir, '<tmp>')}`,
  );
  // What a SIGKILL in the middle of a save leaves: a half-written temp directory and a temp pointer.
  const leftovers = await resume('interrupted-save', async (out, ckpt) => {
    const epoch = Number(ckpt.slice(-4)) + 1;
    const partial = join(out, 'checkpoints', `.epoch-${String(epoch).padStart(4, '0')}.tmp-99999-deadbeef`);
    await cp(ckpt, partial, { recursive: true });
    await writeFile(join(partial, 'weights.bin'), Buffer.alloc(10));
    await rm(join(partial, 'manifest.json'));
    await writeFile(
      join(out, 'checkpoints', 'LATEST.tmp-99999-deadbeef'),
      `epoch-${String(epoch).padStart(4, '0')}\n`,
    );
    await rm(join(out, 'model'), { recursive: true, force: true });
  });
  const summaryLine = leftovers.status === 0 ? JSON.parse(leftovers.stdout.trim().split('\n').at(-1)!) : null;
  checks.check(
    summaryLine !== null && summaryLine.resumedFrom === Number(leftovers.ckpt.slice(-4)),
    `checkpoint: an interrupted save's leftovers are ignored; resumed from the last good checkpoint (epoch ${summaryLine?.resumedFrom}) and finished`,
  );
  await rm(dir, { recursive: true, force: true });
}

/** The backend's JSON log lines of one event, in order (its stdout arrives in chunks: rejoined first). */
function logged(p: Proc, event: string): Record<string, unknown>[] {
  return p.logs
    .join('')
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return []; // a line still being written
      }
    });
}

/** GET /ping every 20 ms until `stop` resolves; each status (0: no answer). */
async function pingThroughout(url: string, stop: Promise<unknown>): Promise<number[]> {
  let running = true;
  void stop.finally(() => (running = false));
  const statuses: number[] = [];
  while (running) {
    try {
      const res = await fetch(`${url}/ping`);
      await res.arrayBuffer();
      statuses.push(res.status);
    } catch {
      statuses.push(0);
    }
    await sleep(20);
  }
  return statuses;
}

async function modelSwitch(): Promise<void> {
  console.log(
    "\n== model-switch: repoint the backend's --model symlink and SIGHUP it under load through the edge",
  );
  const TTL = 3;
  const dir = await mkdtemp(join(tmpdir(), 'pp-faults-switch-'));
  const dirA = await trainTinyModel(join(dir, 'a'), SEED);
  const dirB = await trainTinyModel(join(dir, 'b'), SEED + 1);
  const versionOf = async (d: string) =>
    (JSON.parse(await readFile(join(d, 'manifest.json'), 'utf8')) as { version: string }).version;
  const [vA, vB] = [await versionOf(dirA), await versionOf(dirB)];
  const short = (v: string | undefined) => v?.slice(0, 8) ?? 'none';
  const link = join(dir, 'current');
  await symlink(dirA, link);
  // Atomically, as an operator's `ln -s` + `mv -T` would.
  const repoint = async (target: string) => {
    await symlink(target, `${link}.next`);
    await rename(`${link}.next`, link);
  };
  const { secret, apiKey } = newCredentials();
  const backend = await startBackend({ port: await freePort(), secret, modelDir: link });
  const edge = await startEdge({
    port: await freePort(),
    backendUrl: backend.url,
    secret,
    apiKey,
    vars: { MANIFEST_TTL_SECONDS: String(TTL) },
  });
  const auth = { authorization: `Bearer ${apiKey}` };
  try {
    const warm = await warmUp(edge.url, apiKey);
    const tensorsBefore = (await ping(backend.url))?.tensors;
    const during = load(edge.url, apiKey, warm, 3000 + TTL * 1000);
    const pings = pingThroughout(backend.url, during);
    await sleep(1500);
    await repoint(dirB);
    backend.child.kill('SIGHUP');
    console.log(`  symlink repointed ${short(vA)} → ${short(vB)}, SIGHUP sent`);
    const samples = await during;
    const statuses = await pings;
    const t = summary(`load through the switch (${(3000 + TTL * 1000) / 1000} s)`, samples);

    checks.check(
      samples.every((s) => s.status === 200),
      `model-switch: every request through the edge answered 200 (${t.get('miss 200') + t.get('hit 200') + t.get('lookup 200')}/${samples.length})`,
    );
    checks.check(
      statuses.length > 0 && statuses.every((s) => s === 200),
      `model-switch: the backend's /ping answered 200 throughout (${statuses.filter((s) => s === 200).length}/${statuses.length} polls)`,
    );
    const switched = logged(backend, 'model_switch');
    const retired = logged(backend, 'model_retired');
    checks.check(
      switched.length === 1 &&
        switched[0]!.from === vA &&
        switched[0]!.to === vB &&
        retired[0]?.version === vA,
      `model-switch: the backend switched once, ${short(switched[0]?.from as string)} → ${short(switched[0]?.to as string)} in ${switched[0]?.ms} ms, and freed ${short(retired[0]?.version as string)}`,
    );
    const switchedAt = Date.parse(String(switched[0]?.time));
    const classified = samples.filter((s) => s.kind !== 'lookup');
    const late = classified.filter((s) => s.startedAt > switchedAt + TTL * 1000);
    const early = classified.filter((s) => s.startedAt + s.ms < switchedAt);
    checks.check(
      late.length > 0 &&
        late.every((s) => s.version === vB) &&
        early.length > 0 &&
        early.every((s) => s.version === vA),
      `model-switch: the edge answered ${short(vA)} before the switch (${early.length}) and only ${short(vB)} from MANIFEST_TTL_SECONDS=${TTL} after it (${late.length})`,
    );
    // A miss the new model answered while the edge still held the old manifest: its old-version id must stay empty.
    const stale: number[] = [];
    let wrong = 0;
    for (const s of samples)
      if (s.kind === 'miss' && s.version === vB && s.seed !== undefined) {
        const oldId = await explanationId(vA, inputFrame(s.seed));
        const res = await fetch(`${edge.url}/v1/explanations/${oldId}`, { headers: auth });
        const body = (await res.json()) as { modelVersion?: string };
        if (res.status !== 404 && body.modelVersion !== vA) wrong++;
        stale.push(res.status);
      }
    checks.check(
      stale.length > 0 && wrong === 0,
      `model-switch: none of the ${stale.length} inputs the new model answered is stored under its old-version id (${wrong} wrong)`,
    );
    const tensorsAfter = (await ping(backend.url))?.tensors;
    checks.check(
      tensorsBefore !== undefined && tensorsAfter === tensorsBefore,
      `model-switch: the backend's tensor count is back to ${tensorsBefore} after the old model was freed (${tensorsAfter})`,
    );

    const broken = join(dir, 'broken');
    await mkdir(broken);
    await writeFile(
      join(broken, 'manifest.json'),
      (await readFile(join(dirA, 'manifest.json'))).subarray(0, 100),
    );
    const afterBroken = load(edge.url, apiKey, warm, 2500);
    const pings2 = pingThroughout(backend.url, afterBroken);
    await sleep(500);
    await repoint(broken);
    backend.child.kill('SIGHUP');
    const samples2 = await afterBroken;
    const statuses2 = await pings2;
    summary('load through a SIGHUP to a broken directory (2.5 s)', samples2);
    const failed = logged(backend, 'model_switch_failed');
    checks.check(
      failed.length === 1 &&
        String(failed[0]!.error).includes(join(broken, 'manifest.json')) &&
        samples2.every((s) => s.status === 200 && (s.kind === 'lookup' || s.version === vB)) &&
        statuses2.every((s) => s === 200),
      `model-switch: a broken directory is refused (${String(failed[0]?.error).replaceAll(dir, '<tmp>').slice(0, 80)}…) while ${short(vB)} keeps answering 200 (${samples2.length} requests, ${statuses2.length} pings)`,
    );
  } finally {
    await Promise.all([edge.stop(), backend.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Sends `frame` once through the edge; the status and X-Cache. */
async function classifyOnce(edge: string, apiKey: string, frame: Uint8Array) {
  const res = await fetch(`${edge}/v1/classify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': TENSOR_MEDIA_TYPE },
    body: frame,
  });
  await res.arrayBuffer();
  return { status: res.status, cache: res.headers.get('x-cache'), layer: res.headers.get('x-cache-layer') };
}

async function cacheOutage(): Promise<void> {
  console.log(
    '\n== cache-outage: the KV binding and the Cache API fail every read and write for a period, under load',
  );
  const OUTAGE_MS = 6000;
  const { secret, apiKey } = newCredentials();
  const backend = await startBackend({ port: await freePort(), secret });
  const edge = await startEdge({
    port: await freePort(),
    backendUrl: backend.url,
    secret,
    apiKey,
    vars: {
      // The dev-only switch (edge/src/cache/fault-injection.ts): requests marked with the header below then
      // find both stores down. Never set in wrangler.toml.
      FAULT_INJECTION: '1',
      // The isolate's memory layer is not a store and does not fail in an outage; off, so every read goes to
      // the Cache API and KV and the outage shows on every request.
      MEMORY_CACHE_ENTRIES: '0',
      // No manifest refresh during the run: the backend's /invocations count is then classifications only.
      MANIFEST_TTL_SECONDS: '3600',
    },
    logLevel: 'log', // the edge's per-request JSON lines (console.log) are counted below
  });
  const edgeLog = allLines(edge);
  const outageHeaders = { [FAULT_INJECTION_HEADER]: 'cache-outage' };
  try {
    const warm = await warmUp(edge.url, apiKey);
    const before = await load(edge.url, apiKey, warm, 3000, 8, { ids: 'before' });
    const tb = summary('stores healthy (3 s)', before);
    checks.check(
      before.every((s) => s.status === 200) &&
        before.filter((s) => s.kind === 'hit').every((s) => s.cache === 'HIT'),
      `cache-outage: before the fault every request answered 200, warm inputs as cache hits (${tb.get('hit 200')} hits, ${tb.get('lookup 200')} lookups, ${tb.get('miss 200')} misses)`,
    );
    await sleep(500); // background writes of the misses land
    const faultsBefore = jsonEvents(edgeLog.lines(), 'cache_fault').length;
    const metricsBefore = await scrapeMetrics(backend.url);

    console.log(
      `  outage: every request for ${OUTAGE_MS / 1000} s carries ${FAULT_INJECTION_HEADER}: cache-outage`,
    );
    const during = await load(edge.url, apiKey, warm, OUTAGE_MS, 8, {
      headers: outageHeaders,
      ids: 'outage',
    });
    await sleep(1000); // the failing background writes are logged after their responses
    const metricsAfter = await scrapeMetrics(backend.url);
    const td = summary(`stores down (${OUTAGE_MS / 1000} s)`, during);
    const classified = during.filter((s) => s.kind !== 'lookup');
    const lookups = during.filter((s) => s.kind === 'lookup');
    checks.check(
      during.every((s) => s.status > 0 && s.status < 500),
      `cache-outage: 0 5xx and 0 connection failures during the fault (${during.length} requests; ${during.filter((s) => s.status >= 500 || s.status <= 0).length} bad)`,
    );
    checks.check(
      classified.length > 0 && classified.every((s) => s.status === 200 && s.cache === 'MISS'),
      `cache-outage: every classification answered 200 from the backend, X-Cache MISS, warm inputs included (${td.get('miss 200')} new + ${td.get('hit 200')} warm of ${classified.length})`,
    );
    checks.check(
      lookups.every((s) => s.status === 404),
      `cache-outage: lookups by id, which only a store can answer, got 404 (not a 5xx) (${td.get('lookup 404')}/${lookups.length})`,
    );
    const forwarded =
      metric(metricsAfter, 'protopool_requests_total', { route: '/invocations', status: '200' }) -
      metric(metricsBefore, 'protopool_requests_total', { route: '/invocations', status: '200' });
    checks.check(
      forwarded === classified.length,
      `cache-outage: the backend's /metrics counted ${forwarded} /invocations 200 during the fault = the ${classified.length} classifications sent`,
    );
    const lines = jsonEvents(edgeLog.lines(), 'request').filter((l) => String(l.id).startsWith('outage-'));
    const misses = lines.filter((l) => l.cache === 'MISS');
    checks.check(
      lines.length === during.length && misses.length === during.length,
      `cache-outage: the edge logged ${lines.length} request lines for the ${during.length} requests, ${misses.length} with cache MISS (${misses.filter((l) => l.route === '/v1/classify' && l.status === 200).length} classify 200, ${misses.filter((l) => l.route === '/v1/explanations/:id' && l.status === 404).length} lookup 404)`,
    );
    const faults = jsonEvents(edgeLog.lines(), 'cache_fault').slice(faultsBefore);
    const count = (fault: string, layer: string) =>
      faults.filter((f) => f.fault === fault && f.layer === layer).length;
    const expected = { read: during.length, write: classified.length };
    checks.check(
      faultsBefore === 0 &&
        count('read', 'cache-api') === expected.read &&
        count('read', 'kv') === expected.read &&
        count('write', 'cache-api') === expected.write &&
        count('write', 'kv') === expected.write &&
        faults.length === 2 * (expected.read + expected.write),
      `cache-outage: cache_fault lines: read cache-api ${count('read', 'cache-api')}, read kv ${count('read', 'kv')} (expected ${expected.read}: one per request and store), write cache-api ${count('write', 'cache-api')}, write kv ${count('write', 'kv')} (expected ${expected.write}: one per classification and store); ${faultsBefore} before the fault`,
    );
    console.log(`  e.g. ${JSON.stringify(faults[0])}`);

    const after = await load(edge.url, apiKey, warm, 3000, 8, { ids: 'after' });
    const ta = summary('stores back (3 s)', after);
    checks.check(
      after.every((s) => s.status === 200) &&
        after.filter((s) => s.kind === 'hit').every((s) => s.cache === 'HIT'),
      `cache-outage: after the fault every request answered 200 and hits returned (${ta.get('hit 200')} warm inputs X-Cache HIT, ${ta.get('lookup 200')} lookups 200)`,
    );
    // A write during the outage failed: an input first seen then is a miss again, and a hit once stored.
    const seen = during.filter((s) => s.kind === 'miss' && s.seed !== undefined).slice(0, 10);
    const again: string[] = [];
    for (const s of seen) again.push(`${(await classifyOnce(edge.url, apiKey, inputFrame(s.seed!))).cache}`);
    await sleep(500);
    const third: string[] = [];
    for (const s of seen) {
      const r = await classifyOnce(edge.url, apiKey, inputFrame(s.seed!));
      third.push(`${r.cache} ${r.layer}`);
    }
    checks.check(
      seen.length > 0 && again.every((c) => c === 'MISS') && third.every((c) => c === 'HIT cache-api'),
      `cache-outage: nothing was stored during the fault: ${seen.length} inputs first sent then were MISS again after it, then HIT from cache-api`,
    );
    const faultsAfter = jsonEvents(edgeLog.lines(), 'cache_fault').length - faultsBefore - faults.length;
    checks.check(faultsAfter === 0, `cache-outage: no cache_fault after the fault (${faultsAfter})`);
  } finally {
    await Promise.all([edge.stop(), backend.stop()]);
  }
}

const scenarios: Record<string, () => Promise<void>> = {
  'kill-backend': killBackend,
  'slow-backend': slowBackend,
  'kill-train': killTrain,
  checkpoint: checkpointFaults,
  'model-switch': modelSwitch,
  'cache-outage': cacheOutage,
};

async function main(): Promise<number> {
  const chosen = process.argv.slice(2).filter((a) => a !== '--');
  const names = chosen.length ? chosen : Object.keys(scenarios);
  for (const n of names)
    if (!scenarios[n])
      throw new Error(`unknown scenario "${n}"; choose from ${Object.keys(scenarios).join(', ')}`);
  if (names.includes('checkpoint') && !names.includes('kill-train')) names.unshift('kill-train');
  console.log(`faults: ${names.join(', ')}; seed ${SEED}; ${machine()}; root ${ROOT}`);
  const t0 = Date.now();
  for (const n of names) {
    const s = Date.now();
    await scenarios[n]!();
    console.log(`  (${n}: ${((Date.now() - s) / 1000).toFixed(0)} s)`);
  }
  console.log(
    `\n${checks.passed.length} checks passed, ${checks.failed.length} failed in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  for (const f of checks.failed) console.log(`FAILED: ${f}`);
  return checks.failed.length ? 1 : 0;
}

process.exit(await main());
