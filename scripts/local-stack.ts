// The whole product on loopback: the backend process on the shipped models and the edge under
// `wrangler dev` (local KV and Cache API), wired with a fresh secret and API key. Used by `npm start`
// and by the end-to-end tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');
export const SHIPPED_MODEL = join(ROOT, 'models', 'fashion-mnist');

/** A model directory and the name the backend serves it under (`?model=<name>`). */
export interface ServedModel {
  name: string;
  dir: string;
}

/**
 * What `npm start` serves: the parts model first, so it is the default (its evidence is parts of objects,
 * which shows what a prototype network is for), and Fashion-MNIST beside it.
 */
export const SHIPPED_MODELS: readonly ServedModel[] = [
  { name: 'parts', dir: join(ROOT, 'models', 'parts') },
  { name: 'fashion-mnist', dir: SHIPPED_MODEL },
];

/** `--model` flags for `protopool serve`: one directory as is, or each model under its name, first the default. */
function modelFlags(models: string | readonly ServedModel[]): string[] {
  if (typeof models === 'string') return ['--model', models];
  return models.flatMap((m) => ['--model', `${m.name}=${m.dir}`]);
}

export class PortTakenError extends Error {
  override name = 'PortTakenError';
}

export async function assertPortFree(port: number, what: string, env: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', () =>
      reject(
        new PortTakenError(`port ${port} (${what}) is taken: stop what uses it or set ${env}=<another port>`),
      ),
    );
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
}

export interface LocalStack {
  edgeUrl: string;
  backendUrl: string;
  apiKey: string;
  /** The generated HMAC secret (benchmarks sign direct backend calls with it). */
  secret: string;
  stop(): Promise<void>;
  logs: string[];
}

async function waitFor(url: string, child: ChildProcess, what: string, logs: string[], timeoutMs = 90_000) {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with code ${child.exitCode}:\n${logs.slice(-20).join('')}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} not ready at ${url} after ${timeoutMs / 1000} s:\n${logs.slice(-20).join('')}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** `protopool serve` on loopback with this HMAC secret; `env` adds to (and overrides) the environment. */
export function spawnBackend(
  port: number,
  secret: string,
  models: string | readonly ServedModel[],
  args: string[] = [],
  env: Record<string, string> = {},
): ChildProcess {
  return spawn(
    process.execPath,
    [
      join(ROOT, 'gpu-backend', 'bin', 'protopool.js'),
      'serve',
      ...modelFlags(models),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      ...args,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, PROTOPOOL_HMAC_SECRET: secret, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

/**
 * The edge under `wrangler dev` on loopback with these vars; local KV and Cache API under `persistTo`. Log
 * level `warn` keeps the console quiet; `log` keeps the Worker's console.log (its JSON request lines). The
 * flag wins over WRANGLER_LOG, so it is the one knob.
 */
export function spawnWrangler(
  port: number,
  vars: Record<string, string>,
  persistTo?: string,
  logLevel: 'warn' | 'log' = 'warn',
): ChildProcess {
  return spawn(
    process.execPath,
    [
      join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js'),
      'dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
      ...(persistTo ? ['--persist-to', persistTo] : []),
      '--show-interactive-dev-session=false',
      '--log-level',
      logLevel,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

export async function startLocalStack(o: {
  /** One model directory, or several named models (default: the shipped ones, parts first). */
  models?: string | readonly ServedModel[];
  backendPort?: number;
  edgePort?: number;
  quiet?: boolean;
  /** Where wrangler keeps the local KV and Cache API (default .wrangler/state, kept across runs). */
  persistTo?: string;
}): Promise<LocalStack> {
  const backendPort = o.backendPort ?? 8080;
  const edgePort = o.edgePort ?? 8787;
  await assertPortFree(backendPort, 'backend', 'BACKEND_PORT');
  await assertPortFree(edgePort, 'edge', 'EDGE_PORT');
  const secret = randomBytes(32).toString('hex');
  const apiKey = `pp_${randomBytes(18).toString('base64url')}`;
  const keyHash = createHash('sha256').update(apiKey).digest('hex');
  const logs: string[] = [];
  const collect = (prefix: string) => (chunk: Buffer) => {
    logs.push(`${prefix} ${chunk}`);
    if (logs.length > 500) logs.splice(0, logs.length - 500);
  };
  const backend = spawnBackend(backendPort, secret, o.models ?? SHIPPED_MODELS);
  backend.stdout!.on('data', collect('[backend]'));
  backend.stderr!.on('data', collect('[backend]'));
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const edge = spawnWrangler(
    edgePort,
    {
      BACKEND_URL: backendUrl,
      PROTOPOOL_HMAC_SECRET: secret,
      API_KEY_HASHES: keyHash,
      RATE_LIMIT_PER_MINUTE: '100000',
    },
    o.persistTo,
  );
  edge.stdout!.on('data', collect('[edge]'));
  edge.stderr!.on('data', collect('[edge]'));
  const stop = async () => {
    await Promise.all([stopChild(edge), stopChild(backend)]);
  };
  try {
    await waitFor(`${backendUrl}/ping`, backend, 'backend', logs);
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    await waitFor(`${edgeUrl}/healthz`, edge, 'edge (wrangler dev)', logs);
    return { edgeUrl, backendUrl, apiKey, secret, stop, logs };
  } catch (err) {
    await stop();
    throw err;
  }
}
