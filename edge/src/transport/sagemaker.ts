// SageMaker transport: InvokeEndpoint over HTTPS, SigV4-signed with aws4fetch (~3 KiB gzip, versus ~56 KiB
// for @aws-sdk/client-sagemaker-runtime; both sign correctly inside workerd — see NOTES.md).
// SageMaker forwards only /invocations, so the manifest and prototype images travel as routes named in
// the CustomAttributes header, which the backend reads (route=manifest, route=prototype-image&id=N,
// route=models); so do a model choice (model=) and the request's trace (rid=, traceparent=), inside the
// attributes the HMAC covers.
import {
  ApiError,
  type ClassifyOptions,
  CUSTOM_ATTRIBUTES_HEADER,
  Explanation,
  encodeFrame,
  type Invocation,
  invocationAttributes,
  ModelList,
  ModelManifest,
  type ModelName,
  modelQuery,
  optionsQuery,
  type RequestTrace,
  signAttributes,
  TENSOR_MEDIA_TYPE,
  type WireTensor,
} from '@protopool/shared';
import { AwsClient } from 'aws4fetch';
import type { z } from 'zod';
import { type Backend, BackendError } from './backend';

export interface SageMakerOptions {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
  /** The backend's HMAC secret: the signature rides in CustomAttributes, the only header SageMaker forwards. */
  secret?: string | undefined;
  timeoutMs: number;
  /** Override for tests: where the runtime API lives (default https://runtime.sagemaker.<region>.amazonaws.com). */
  baseUrl?: string;
}

export class SageMakerBackend implements Backend {
  readonly name = 'sagemaker';
  private readonly aws: AwsClient;
  private readonly url: string;

  constructor(private readonly o: SageMakerOptions) {
    this.aws = new AwsClient({
      accessKeyId: o.accessKeyId,
      secretAccessKey: o.secretAccessKey,
      sessionToken: o.sessionToken,
      region: o.region,
      service: 'sagemaker',
      retries: 1, // one retry, as the HTTP transport
    });
    const base = o.baseUrl ?? `https://runtime.sagemaker.${o.region}.amazonaws.com`;
    this.url = `${base.replace(/\/$/, '')}/endpoints/${encodeURIComponent(o.endpoint)}/invocations`;
  }

  private async invoke(
    invocation: Invocation,
    body: Uint8Array,
    type: string,
    accept: string,
  ): Promise<Response> {
    let attributes = invocationAttributes(invocation);
    if (this.o.secret) attributes = await signAttributes(this.o.secret, attributes, body);
    try {
      return await this.aws.fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': type, accept, [CUSTOM_ATTRIBUTES_HEADER]: attributes },
        body,
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new BackendError(
          'backend_timeout',
          `SageMaker endpoint did not answer within ${this.o.timeoutMs} ms`,
        );
      }
      throw new BackendError(
        'backend_unavailable',
        `SageMaker endpoint unreachable: ${(err as Error).message}`,
      );
    }
  }

  private async failure(res: Response): Promise<BackendError> {
    const body = await res.json().catch(() => null);
    const parsed = ApiError.safeParse(body);
    // SageMaker wraps container errors: a 4xx from our container arrives as a ModelError (424) whose
    // OriginalStatusCode/OriginalMessage carry our ApiError.
    const original = (body as { OriginalStatusCode?: number; OriginalMessage?: string } | null) ?? {};
    if (original.OriginalStatusCode === 401) {
      // Edge-to-backend auth is our configuration: never the client's fault.
      return new BackendError('backend_unavailable', 'backend refused the edge’s signature');
    }
    if (original.OriginalStatusCode && original.OriginalStatusCode < 500 && original.OriginalMessage) {
      let message: unknown = null;
      try {
        message = JSON.parse(original.OriginalMessage);
      } catch {
        // not JSON: fall through to the generic answer
      }
      const inner = ApiError.safeParse(message);
      if (inner.success) {
        return new BackendError(inner.data.error.code, inner.data.error.message, inner.data.error.details);
      }
    }
    if (parsed.success && res.status < 500) {
      return new BackendError(parsed.data.error.code, parsed.data.error.message);
    }
    return new BackendError('backend_unavailable', `SageMaker endpoint answered ${res.status}`);
  }

  /** A 2xx's body as `schema` says, or the failure the edge reports. */
  private async answer<T>(res: Response, schema: z.ZodType<T>, what: string): Promise<T> {
    if (!res.ok) throw await this.failure(res);
    const parsed = schema.safeParse(await res.json());
    if (!parsed.success)
      throw new BackendError('backend_unavailable', `SageMaker endpoint sent an invalid ${what}`);
    return parsed.data;
  }

  async explain(
    tensor: WireTensor,
    options: ClassifyOptions,
    trace?: RequestTrace,
    model?: ModelName,
  ): Promise<Explanation> {
    // The classify attributes are the query /invocations would take, model= included.
    const query = { ...optionsQuery(options), ...modelQuery(model) };
    const res = await this.invoke(
      { route: 'classify', query, ...trace },
      encodeFrame(tensor),
      TENSOR_MEDIA_TYPE,
      'application/json',
    );
    return this.answer(res, Explanation, 'explanation');
  }

  async manifest(trace?: RequestTrace, model?: ModelName): Promise<ModelManifest> {
    const res = await this.invoke(
      { route: 'manifest', ...modelQuery(model), ...trace },
      new Uint8Array(),
      'application/json',
      'application/json',
    );
    return this.answer(res, ModelManifest, 'manifest');
  }

  async prototypeImage(id: number, trace?: RequestTrace, model?: ModelName): Promise<Uint8Array | null> {
    const res = await this.invoke(
      { route: 'prototype-image', id: String(id), ...modelQuery(model), ...trace },
      new Uint8Array(),
      'application/json',
      'image/png',
    );
    if (!res.ok) {
      const err = await this.failure(res);
      if (err.code === 'not_found') return null;
      throw err;
    }
    return new Uint8Array(await res.arrayBuffer());
  }

  async models(trace?: RequestTrace): Promise<ModelList> {
    const res = await this.invoke(
      { route: 'models', ...trace },
      new Uint8Array(),
      'application/json',
      'application/json',
    );
    return this.answer(res, ModelList, 'model list');
  }
}
