// Runs the backend: HTTP up at once (ping 503 while the model loads), SIGTERM drains in-flight work.
import { type ServerType, serve } from '@hono/node-server';
import { engineSummary, initEngine } from '../engine';
import { createApp } from './app';
import type { BatcherOptions } from './batcher';
import { ModelService } from './model-service';

export interface ServeOptions {
  modelDir: string;
  port: number;
  host: string;
  secret: string | undefined;
  engine?: string;
  batching: BatcherOptions;
  maxBodyBytes: number;
  log: (event: Record<string, unknown>) => void;
}

export interface RunningServer {
  port: number;
  /** Stops accepting, finishes queued and running requests, frees the model. */
  close(): Promise<void>;
  ready: Promise<ModelService>;
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const engine = await initEngine(o.engine);
  let service: ModelService | undefined;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const app = createApp({
    service: () => service,
    engine: engineSummary(engine),
    secret: o.secret,
    maxBodyBytes: o.maxBodyBytes,
    retryAfterSeconds: 1,
    log: o.log,
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve(
      {
        fetch: async (req) => {
          inFlight++;
          try {
            return await app.fetch(req);
          } finally {
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

  const ready = ModelService.load(o.modelDir, o.batching).then((s) => {
    service = s;
    o.log({
      event: 'model_loaded',
      dir: o.modelDir,
      version: s.manifest.version,
      prototypes: s.manifest.prototypes.length,
    });
    return s;
  });
  ready.catch((err) => o.log({ event: 'model_load_failed', dir: o.modelDir, error: (err as Error).message }));

  return {
    port,
    ready,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await service?.batcher.drain();
      // Keep-alive sockets with no request in flight would hold close() open forever.
      (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await closed;
      service?.dispose();
      service = undefined;
    },
  };
}
