// Shared by the reliability scripts (soak, faults): the backend and the edge as separately controllable
// processes on loopback (so one can be killed and restarted while the other keeps running), process RSS,
// seeded inputs and small statistics. Built on scripts/local-stack.ts (ports, paths).
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { encodeFrame, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { mulberry32 } from '../../gpu-backend/src/util/random';
import { CLI, freePort } from '../../test/helpers/backend-process';
import { ROOT, SHIPPED_MODEL, spawnBackend, spawnWrangler } from '../local-stack';

export { CLI, freePort, ROOT, SHIPPED_MODEL, TENSOR_MEDIA_TYPE };

export interface Proc {
  child: ChildProcess;
  logs: string[];
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function collect(child: ChildProcess, logs: string[]): void {
  const push = (c: Buffer) => {
    logs.push(c.toString());
    if (logs.length > 5000) logs.splice(0, logs.length - 5000);
  };
  child.stdout?.on('data', push);
  child.stderr?.on('data', push);
}

function stopper(child: ChildProcess) {
  return (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
}

export async function waitUntil(url: string, child: ChildProcess, what: string, logs: string[], ms = 90_000) {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited (${child.exitCode}):\n${logs.slice(-20).join('')}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`${what} not ready at ${url} after ${ms / 1000} s`);
}

/** `protopool serve` on the given port with the given secret (wasm engine unless PROTOPOOL_ENGINE says otherwise). */
export async function startBackend(o: {
  port: number;
  secret: string;
  modelDir?: string;
  args?: string[];
}): Promise<Proc> {
  const child = spawnBackend(o.port, o.secret, o.modelDir ?? SHIPPED_MODEL, o.args, {
    PROTOPOOL_ENGINE: process.env.PROTOPOOL_ENGINE ?? 'wasm',
  });
  const logs: string[] = [];
  collect(child, logs);
  const url = `http://127.0.0.1:${o.port}`;
  await waitUntil(`${url}/ping`, child, 'backend', logs);
  return { child, logs, url, stop: stopper(child) };
}

/** The edge Worker under `wrangler dev` (local KV and Cache API), pointed at `backendUrl`. */
export async function startEdge(o: {
  port: number;
  backendUrl: string;
  secret: string;
  apiKey: string;
  vars?: Record<string, string>;
  /**
   * wrangler's log level: local-stack's `warn` (the default) drops the Worker's console.log, i.e. the edge's
   * per-request JSON lines; `log` keeps them, for scenarios that count them.
   */
  logLevel?: 'warn' | 'log';
}): Promise<Proc> {
  const keyHash = createHash('sha256').update(o.apiKey).digest('hex');
  const persist = join(ROOT, '.wrangler', `reliability-${process.pid}-${o.port}`);
  const vars = {
    BACKEND_URL: o.backendUrl,
    PROTOPOOL_HMAC_SECRET: o.secret,
    API_KEY_HASHES: keyHash,
    RATE_LIMIT_PER_MINUTE: '10000000',
    ...o.vars,
  };
  // A fresh local KV/Cache per run: no explanation cached by an earlier run counts as a hit.
  const child = spawnWrangler(o.port, vars, persist, o.logLevel);
  const logs: string[] = [];
  collect(child, logs);
  const url = `http://127.0.0.1:${o.port}`;
  await waitUntil(`${url}/healthz`, child, 'edge (wrangler dev)', logs);
  const stop = stopper(child);
  return {
    child,
    logs,
    url,
    stop: async (signal) => {
      await stop(signal);
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

export function newCredentials() {
  return { secret: randomBytes(32).toString('hex'), apiKey: `pp_${randomBytes(18).toString('base64url')}` };
}

/** Resident memory of a process and all its descendants (Linux /proc), in MB. */
export function treeRssMb(pid: number): number {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [p, pp] of parents) if (pp === tree[i]) tree.push(p);
  let kb = 0;
  for (const p of tree) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return Math.round(kb / 1024);
}

/** A distinct, valid model input per seed (28×28×1 normalised floats). */
export function inputFrame(seed: number, shape = [1, 28, 28, 1]): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const rand = mulberry32(seed);
  return encodeFrame(
    tensor(
      'float32',
      shape,
      Float32Array.from({ length: n }, () => rand() * 2 - 1),
    ),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function quantile(values: number[], q: number): number {
  if (!values.length) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export async function ping(
  backendUrl: string,
): Promise<{ tensors: number; queue: number; engine: string } | null> {
  try {
    return (await (await fetch(`${backendUrl}/ping`)).json()) as {
      tensors: number;
      queue: number;
      engine: string;
    };
  } catch {
    return null;
  }
}

/** Counts by key, e.g. "miss 200". */
export class Tally {
  readonly counts: Record<string, number> = {};
  add(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }
  get(key: string): number {
    return this.counts[key] ?? 0;
  }
}

/** Fails the script with a list of every broken expectation (not just the first). */
export class Checks {
  readonly failed: string[] = [];
  readonly passed: string[] = [];
  check(ok: boolean, what: string): void {
    (ok ? this.passed : this.failed).push(what);
    console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  }
}

export function machine(): string {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const cpus = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? 0;
  return `${cpus} cores, load average ${load}, node ${process.version}`;
}

/** One sample of a Prometheus text exposition: `name{label="value",…} number`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** GET <backend>/metrics, parsed (comments dropped; label values unescaped enough for ours: no quotes in them). */
export async function scrapeMetrics(backendUrl: string): Promise<MetricSample[]> {
  const res = await fetch(`${backendUrl}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const samples: MetricSample[] = [];
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of one series (0 when absent: a counter never incremented is not exported). */
export function metric(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number {
  return (
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      ?.value ?? 0
  );
}

/** Every line a process writes to stdout and stderr, unbounded (Proc.logs keeps only the last chunks). */
export function allLines(p: Proc): { lines: () => string[] } {
  const buffers = { out: '', err: '' };
  const lines: string[] = [];
  const take = (k: 'out' | 'err') => (c: Buffer) => {
    buffers[k] += c.toString();
    const parts = buffers[k].split('\n');
    buffers[k] = parts.pop()!;
    lines.push(...parts);
  };
  p.child.stdout?.on('data', take('out'));
  p.child.stderr?.on('data', take('err'));
  return { lines: () => lines };
}

/** The JSON lines of one event among `lines` (wrangler may prefix and colour a line: the JSON starts at the first "{"). */
export function jsonEvents(lines: string[], event: string): Record<string, unknown>[] {
  return lines
    .filter((l) => l.includes(`"event":"${event}"`))
    .flatMap((l) => {
      // wrangler colours console.error lines ("✘ [ERROR] {…}" in ANSI escapes): strip them first.
      const plain = stripVTControlCharacters(l);
      try {
        return [JSON.parse(plain.slice(plain.indexOf('{'))) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
