// Runs the backend: HTTP up at once (ping 503 while the models load), reload() switches models without a
// gap, SIGTERM drains in-flight work.
import { type ServerType, serve } from '@hono/node-server';
import { engineSummary, initEngine } from '../engine';
import { createApp } from './app';
import type { BatcherOptions } from './batcher';
import { type CatalogModel, ModelCatalog } from './model-catalog';

export interface ServeOptions {
  /** The models to serve, each under its name; the CLI's `locate` re-resolves --model (maybe a symlink). */
  models: CatalogModel[];
  /** The model answering requests that name none (default: the first). */
  defaultModel?: string;
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
  /** Stops accepting, finishes queued and running requests, frees the models. */
  close(): Promise<void>;
  /** Resolves once every model is loaded; rejects (naming the model) when one cannot be. */
  ready: Promise<ModelCatalog>;
  /** Loads each model where it is now and switches to the ones that changed; a failure keeps the current one. */
  reload(): Promise<void>;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const engine = await initEngine(o.engine);
  const models = new ModelCatalog({
    models: o.models,
    ...(o.defaultModel === undefined ? {} : { defaultModel: o.defaultModel }),
    batching: o.batching,
    log: o.log,
  });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const app = createApp({
    models,
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
          // Holds the models current at arrival until the response is built: a switch frees one only after.
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

  const ready = models.start().then(() => models);
  ready.catch((err) => o.log({ event: 'model_load_failed', error: (err as Error).message }));

  return {
    port,
    ready,
    reload: () => models.reload(),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await models.drain();
      // Keep-alive sockets with no request in flight would hold close() open forever.
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await closed;
      await models.close();
    },
  };
}
