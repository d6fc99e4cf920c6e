// Every edge response's X-Request-Id (the client's own when sane) and the request's one JSON log line.
import {
  REQUEST_ID_HEADER,
  type RequestTrace,
  requestIdOf,
  TRACEPARENT_HEADER,
  traceparentOf,
} from '@protopool/shared';
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { AppEnv } from './isolate';

/** The trace a request hands its backend calls: an id always, a traceparent when the client sent a valid one. */
export type Trace = RequestTrace & { requestId: string };

/** What the classify and lookup routes learned, for the log line. */
export interface Outcome {
  cache: 'HIT' | 'MISS' | 'BYPASS';
  layer: string | null;
  backendMs?: number | undefined;
}

export const tracing: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  const traceparent = traceparentOf(c.req.header(TRACEPARENT_HEADER));
  const trace: Trace = { requestId: requestIdOf(c.req.header(REQUEST_ID_HEADER)) };
  if (traceparent) trace.traceparent = traceparent;
  c.set('trace', trace);
  await next();
  try {
    c.res.headers.set(REQUEST_ID_HEADER, trace.requestId);
  } catch {
    // a response whose headers are immutable (one passed through from fetch): copy it
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(REQUEST_ID_HEADER, trace.requestId);
  }
  const outcome = c.get('outcome');
  // Never the key, the secret, a signature or a body: ids, the route pattern and numbers only.
  console.log(
    JSON.stringify({
      event: 'request',
      id: trace.requestId,
      route: matchedRoutes(c).find((r) => r.method !== 'ALL')?.path ?? 'unmatched',
      status: c.res.status,
      cache: outcome?.cache,
      layer: outcome?.layer,
      ms: Date.now() - started,
      backendMs: outcome?.backendMs,
    }),
  );
};
