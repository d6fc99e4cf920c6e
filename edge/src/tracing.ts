// Every edge response's X-Request-Id (the client's own when sane), the request's one JSON log line, and its one
// Workers Analytics Engine data point when an ANALYTICS dataset is bound.
import {
  type ErrorCode,
  HTTP_STATUS,
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
  /** The model the client named (absent: the default) and the version that answered. */
  model?: string | undefined;
  modelVersion?: string | undefined;
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
  const line: RequestLine = {
    event: 'request',
    id: trace.requestId,
    route: matchedRoutes(c).find((r) => r.method !== 'ALL')?.path ?? 'unmatched',
    status: c.res.status,
    cache: outcome?.cache,
    layer: outcome?.layer,
    ms: Date.now() - started,
    backendMs: outcome?.backendMs,
    model: outcome?.model,
    modelVersion: outcome?.modelVersion?.slice(0, 12),
  };
  // Never the key, the secret, a signature or a body: ids, the route pattern and numbers only.
  console.log(JSON.stringify(line));
  const dataset = c.env?.ANALYTICS;
  if (dataset) await writePoint(dataset, line, c.res);
};

/** The request's log line (`undefined` fields are left out of the JSON). */
export interface RequestLine {
  event: 'request';
  id: string;
  route: string;
  status: number;
  cache: Outcome['cache'] | undefined;
  layer: string | null | undefined;
  ms: number;
  backendMs: number | undefined;
  model: string | undefined;
  /** The first 12 hex digits, as the backend's logs and error messages shorten it. */
  modelVersion: string | undefined;
}

/** The Analytics Engine index holds at most 96 bytes. */
const MAX_INDEX_BYTES = 96;

/**
 * The request's data point. blob1 route pattern, blob2 status class (`2xx`), blob3 cache outcome
 * (HIT|MISS|BYPASS|none), blob4 cache layer (or none), blob5 error code (or ''), blob6 the model named (default
 * when none was, '' off the classify route), blob7 the answering model's version, 12 hex digits (or ''); double1 total ms, double2 backend
 * ms (0 when the backend was not called), double3 status; index1 the route pattern (the sampling key). Never the
 * request id: it is the client's own string when sane (client-chosen content has no place in the dataset), one
 * per request (no aggregate is grouped by it), and Analytics Engine samples at volume, so a lookup by id would
 * miss; the log line carries it. Never a key, secret, signature or body either.
 */
export function dataPoint(line: RequestLine, errorCode: ErrorCode | undefined): AnalyticsEngineDataPoint {
  return {
    indexes: [upToBytes(line.route, MAX_INDEX_BYTES)],
    blobs: [
      line.route,
      `${Math.floor(line.status / 100)}xx`,
      line.cache ?? 'none',
      line.layer ?? 'none',
      errorCode ?? '',
      line.model ?? (line.modelVersion ? 'default' : ''),
      line.modelVersion ?? '',
    ],
    doubles: [line.ms, line.backendMs ?? 0, line.status],
  };
}

/**
 * Writes the point. writeDataPoint is synchronous and fire-and-forget (the runtime sends it after the response);
 * one that throws is logged and the response goes out unchanged. Only an error response is read, for its code:
 * the edge's own small JSON body (`fail`), cloned, in memory.
 */
async function writePoint(dataset: AnalyticsEngineDataset, line: RequestLine, res: Response) {
  try {
    dataset.writeDataPoint(dataPoint(line, await errorCodeOf(res)));
  } catch (err) {
    console.warn(
      JSON.stringify({
        event: 'analytics_write_failed',
        route: line.route,
        error: err instanceof Error ? err.message.slice(0, 200) : 'unknown',
      }),
    );
  }
}

async function errorCodeOf(res: Response): Promise<ErrorCode | undefined> {
  if (res.status < 400 || !res.headers.get('content-type')?.startsWith('application/json')) return undefined;
  try {
    const code = ((await res.clone().json()) as { error?: { code?: unknown } } | null)?.error?.code;
    // One of the API's own codes only, never whatever a body happens to hold.
    return typeof code === 'string' && Object.hasOwn(HTTP_STATUS, code) ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}

function upToBytes(s: string, max: number): string {
  const encoder = new TextEncoder();
  let out = s;
  while (encoder.encode(out).length > max) out = out.slice(0, -1);
  return out;
}
