// Every request's id (echoed as X-Request-Id), its one JSON log line and its metrics sample.
import {
  CUSTOM_ATTRIBUTES_HEADER,
  REQUEST_ID_HEADER,
  readInvocation,
  requestIdOf,
  TRACEPARENT_HEADER,
  traceparentOf,
} from '@protopool/shared';
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { BatchTiming } from './batcher';
import type { BackendMetrics } from './metrics';
import type { ServedModels } from './model-catalog';

export type RequestVars = {
  requestId: string;
  /** The request's share of its batch, when it was classified. */
  timing: BatchTiming | undefined;
  /** The name of the model the request used (the one it named, or the default), once the route chose it. */
  model: string | undefined;
};

export interface RequestLogOptions {
  models: ServedModels;
  metrics: BackendMetrics | undefined;
  log: (event: Record<string, unknown>) => void;
}

// Health probes and scrapes arrive every few seconds from machines: counted in the metrics, not logged.
// The Open Inference Protocol's liveness and readiness routes are Kubernetes' probes: quiet as well.
const QUIET = new Set(['/ping', '/metrics']);
const PROBE = /^\/v2\/(health\/(live|ready)|models\/[^/]+(\/versions\/[^/]+)?\/ready)$/;

/** The route pattern that answered (bounded label values: never a raw path), or "unmatched". */
export function routeOf(c: Context): string {
  return matchedRoutes(c).find((r) => r.method !== 'ALL')?.path ?? 'unmatched';
}

/** Where the edge put the trace: inside the signed request (the query over HTTP, CustomAttributes through
 * SageMaker), else the headers a direct client sends. */
function traceOf(c: Context) {
  let carried: { requestId?: string; traceparent?: string } = {};
  try {
    carried = readInvocation(c.req.header(CUSTOM_ATTRIBUTES_HEADER));
  } catch {
    // an unknown route there is refused by the handler, with its own error
  }
  return {
    requestId: requestIdOf(c.req.query('rid') ?? carried.requestId ?? c.req.header(REQUEST_ID_HEADER)),
    traceparent: traceparentOf(carried.traceparent ?? c.req.header(TRACEPARENT_HEADER)),
  };
}

export function requestLog(o: RequestLogOptions): MiddlewareHandler<{ Variables: RequestVars }> {
  return async (c, next) => {
    const started = performance.now();
    const { requestId, traceparent } = traceOf(c);
    c.set('requestId', requestId);
    for (const name of o.models.names) {
      const s = o.models.service(name);
      if (s) o.metrics?.watch(s);
    }
    const done = o.metrics?.begin();
    try {
      await next();
    } finally {
      done?.();
    }
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
    const ms = performance.now() - started;
    const route = routeOf(c);
    o.metrics?.request(route, c.res.status, ms);
    if (QUIET.has(route) || PROBE.test(c.req.path)) return;
    const t = c.get('timing');
    const model = c.get('model');
    o.log({
      event: 'request',
      id: requestId,
      route,
      ...(model !== undefined && { model }),
      status: c.res.status,
      ms: round(ms),
      ...(t && { queueMs: round(t.queueMs), inferMs: round(t.runMs), batchSize: t.batchSize }),
      ...(traceparent && { traceparent }),
    });
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
