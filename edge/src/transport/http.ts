// HTTP transport: fetch to BACKEND_URL, HMAC-signed as the backend expects, with a timeout and one retry
// when the connection itself fails (never after the backend answered: a retry could double the work).
// The request id rides in the signed path's query (rid=), the traceparent in its standard header, a model
// choice in it as model= (signed like the rest, so it cannot be swapped on the way).
import {
  ApiError,
  type ClassifyOptions,
  Explanation,
  encodeFrame,
  ModelList,
  ModelManifest,
  type ModelName,
  modelQuery,
  optionsQuery,
  type RequestTrace,
  signRequest,
  TENSOR_MEDIA_TYPE,
  TRACEPARENT_HEADER,
  type WireTensor,
} from '@protopool/shared';
import { type Backend, BackendError } from './backend';

export interface HttpBackendOptions {
  baseUrl: string;
  secret: string | undefined;
  timeoutMs: number;
  fetch?: typeof fetch;
}

export class HttpBackend implements Backend {
  readonly name = 'http';
  private readonly fetcher: typeof fetch;

  constructor(private readonly o: HttpBackendOptions) {
    this.fetcher = o.fetch ?? ((input, init) => fetch(input, init));
  }

  private async request(
    method: string,
    route: string,
    query: Record<string, string>,
    trace: RequestTrace | undefined,
    body?: Uint8Array,
    type?: string,
  ): Promise<Response> {
    const params = new URLSearchParams(query);
    if (trace?.requestId) params.set('rid', trace.requestId);
    const path = params.toString() ? `${route}?${params}` : route;
    const bytes = body ?? new Uint8Array();
    const headers: Record<string, string> = type ? { 'content-type': type } : {};
    if (trace?.traceparent) headers[TRACEPARENT_HEADER] = trace.traceparent;
    if (this.o.secret)
      Object.assign(headers, await signRequest(this.o.secret, { method, path, body: bytes }));
    const url = this.o.baseUrl.replace(/\/$/, '') + path;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetcher(url, {
          method,
          headers,
          body: body ? bytes : undefined,
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
      } catch (err) {
        const name = (err as Error).name;
        if (name === 'TimeoutError' || name === 'AbortError') {
          throw new BackendError('backend_timeout', `backend did not answer within ${this.o.timeoutMs} ms`);
        }
        if (attempt >= 1) {
          throw new BackendError('backend_unavailable', `backend unreachable: ${(err as Error).message}`);
        }
      }
    }
  }

  private async failure(res: Response): Promise<BackendError> {
    const parsed = ApiError.safeParse(await res.json().catch(() => null));
    if (res.status >= 400 && res.status < 500 && parsed.success) {
      const { code, message, details } = parsed.data.error;
      // Auth between edge and backend is our configuration, not the client's fault.
      if (res.status === 401)
        return new BackendError('backend_unavailable', 'backend refused the edge’s signature');
      return new BackendError(code, message, details);
    }
    if (res.status === 503)
      return new BackendError('backend_unavailable', 'backend overloaded or starting; retry shortly');
    return new BackendError('backend_unavailable', `backend answered ${res.status}`);
  }

  async explain(
    tensor: WireTensor,
    options: ClassifyOptions,
    trace?: RequestTrace,
    model?: ModelName,
  ): Promise<Explanation> {
    const res = await this.request(
      'POST',
      '/invocations',
      { ...optionsQuery(options), ...modelQuery(model) },
      trace,
      encodeFrame(tensor),
      TENSOR_MEDIA_TYPE,
    );
    if (!res.ok) throw await this.failure(res);
    const parsed = Explanation.safeParse(await res.json());
    if (!parsed.success) throw new BackendError('backend_unavailable', 'backend sent an invalid explanation');
    return parsed.data;
  }

  async manifest(trace?: RequestTrace, model?: ModelName): Promise<ModelManifest> {
    const res = await this.request('GET', '/v1/model', modelQuery(model), trace);
    if (!res.ok) throw await this.failure(res);
    const parsed = ModelManifest.safeParse(await res.json());
    if (!parsed.success) throw new BackendError('backend_unavailable', 'backend sent an invalid manifest');
    return parsed.data;
  }

  async prototypeImage(id: number, trace?: RequestTrace, model?: ModelName): Promise<Uint8Array | null> {
    const res = await this.request('GET', `/v1/prototypes/${id}/image`, modelQuery(model), trace);
    if (res.status === 404) return null;
    if (!res.ok) throw await this.failure(res);
    return new Uint8Array(await res.arrayBuffer());
  }

  async models(trace?: RequestTrace): Promise<ModelList> {
    const res = await this.request('GET', '/v1/models', {}, trace);
    if (!res.ok) throw await this.failure(res);
    const parsed = ModelList.safeParse(await res.json());
    if (!parsed.success) throw new BackendError('backend_unavailable', 'backend sent an invalid model list');
    return parsed.data;
  }
}
