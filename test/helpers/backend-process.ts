// Starts the real `protopool serve` process on a free loopback port and waits until every model is loaded.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'gpu-backend', 'bin', 'protopool.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

export interface BackendProcess {
  url: string;
  child: ChildProcess;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startBackend(
  args: string[],
  env: Record<string, string> = {},
): Promise<BackendProcess> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), ...args],
    {
      env: { ...process.env, PROTOPOOL_ENGINE: 'wasm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    // A line may arrive in two chunks (models_ready carries every version): only whole lines are read.
    let partial = '';
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        logs.push(line);
        // Every model in, not the first of several: a test may ask for any of them at once.
        if (line.includes('"models_ready"')) resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    void exited.then((code) =>
      reject(new Error(`backend exited with ${code} before it was ready:\n${logs.join('\n')}`)),
    );
  });
  await ready;
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The tiny training configuration tests use: 12 prototypes, 96 images, one epoch per phase (~5 s). */
export const TINY_CONFIG = {
  model: { prototypes: 12, slotsPerClass: 2, depth: 16 },
  batchSize: 32,
  epochs: { warmup: 1, joint: 1, lastLayer: 1 },
  gumbelTime: 2,
  limits: { train: 96, test: 64 },
};

/** A tiny model trained on the embedded data, for tests that need a real one (~5 s). */
export async function trainTinyModel(outDir: string, seed = 5): Promise<string> {
  const { openDataset } = await import('../../gpu-backend/src/data/specs');
  const { initEngine } = await import('../../gpu-backend/src/engine');
  const { TrainConfig } = await import('../../gpu-backend/src/train/config');
  const { train } = await import('../../gpu-backend/src/train/trainer');
  await initEngine('wasm');
  const dataset = await openDataset('fashion-mnist:embedded');
  const r = await train({
    dataset,
    config: TrainConfig.parse({ seed, ...TINY_CONFIG }),
    outDir,
    resume: false,
    command: 'test',
  });
  return r.modelDir;
}
