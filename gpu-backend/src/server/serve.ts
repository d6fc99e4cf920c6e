// Runs the backend: HTTP up at once (ping 503 while the model loads), reload() switches models without a
// gap, SIGTERM drains in-flight work.
import { type ServerType, serve } from '@hono/node-server';
import { engineSummary, initEngine } from '../engine';
import { createApp } from './app';
import type { BatcherOptions } from './batcher';
import { ModelRegistry } from './model-registry';
import type { ModelService } from './model-service';

export interface ServeOptions {
  modelDir: string;
  /** Where the model is at a reload (default: modelDir); the CLI re-resolves --model, which may be a symlink. */
  locateModel?: () => Promise<string>;
  port: number;
  host: string;
  secret: string | undefined;
  engine?: string;
  batching: BatcherOptions;
  maxBodyBytes: number;
  /** Serve GET /metrics (Prometheus text); on unless false. */
  metrics?: boolean;
  log: (event: Record<string, unknown>) => void;
}

export interface RunningServer {
  port: number;
  /** Stops accepting, finishes queued and running requests, frees the model. */
  close(): Promise<void>;
  ready: Promise<ModelService>;
  /** Loads the model where it is now and switches to it once ready; a failure keeps the current one. */
  reload(): Promise<void>;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const engine = await initEngine(o.engine);
  const models = new ModelRegistry({
    locate: o.locateModel ?? (async () => o.modelDir),
    batching: o.batching,
    log: o.log,
  });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const app = createApp({
    service: () => models.service,
    engine: engineSummary(engine),
    secret: o.secret,
    maxBodyBytes: o.maxBodyBytes,
    metrics: o.metrics ?? true,
    retryAfterSeconds: 1,
    log: o.log,
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve(
      {
        fetch: async (req) => {
          inFlight++;
          // Holds the model current at arrival until the response is built: a switch frees it only after.
          const leave = models.enter();
          try {
            return await app.fetch(req);
          } finally {
            leave();
            inFlight--;
            if (inFlight === 0) drained?.();
          }
        },
        port: o.port,
        hostname: o.host,
      },
      () => resolve(s),
    );
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log({
    event: 'listening',
    host: o.host,
    port,
    engine: engineSummary(engine),
    auth: o.secret ? 'hmac' : 'insecure',
  });

  const ready = models.start();
  ready.catch((err) => o.log({ event: 'model_load_failed', dir: o.modelDir, error: (err as Error).message }));

  return {
    port,
    ready,
    reload: () => models.reload(),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await models.service?.batcher.drain();
      // Keep-alive sockets with no request in flight would hold close() open forever.
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await closed;
      await models.close();
    },
  };
}
