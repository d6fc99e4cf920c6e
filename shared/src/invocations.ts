// SageMaker's /invocations carrying the whole backend API. SageMaker forwards only the body, its content
// type and one header, CustomAttributes, so everything else rides in that header as a query string:
//
//   classify          explain=true&topK=3&explainTopK=false      (the options, as the query would carry them)
//   the manifest      route=manifest
//   prototype image   route=prototype-image&id=7
//   the model list    route=models
//
// Classify, the manifest and the prototype image take &model=<name> for a model other than the default
// (models.ts); one container serves every model, so SageMaker's own multi-model TargetModel is not used.
//
// each optionally followed by the request's trace (tracing.ts): &rid=<request id>&traceparent=<W3C value>,
// and, when the backend has an HMAC secret, the signature is appended after the attributes it covers:
//   <attributes>&pp-ts=<unix s>&pp-sig=v1=<hex>, signed (hmac.ts) as POST "/invocations?<attributes>".
import { ProtocolError } from './errors';
import { SIGNATURE_HEADER, signRequest, TIMESTAMP_HEADER, type VerifyResult, verifyRequest } from './hmac';
import { modelQuery } from './models';
import { RequestId, type RequestTrace, Traceparent } from './tracing';

export const CUSTOM_ATTRIBUTES_HEADER = 'X-Amzn-SageMaker-Custom-Attributes';

export type Invocation = (
  | { route: 'classify'; query: Record<string, string> }
  | { route: 'manifest'; model?: string }
  | { route: 'prototype-image'; id: string; model?: string }
  | { route: 'models' }
) &
  RequestTrace;

/** The attributes asking for `invocation` (unsigned). */
export function invocationAttributes(invocation: Invocation): string {
  const trace = new URLSearchParams();
  if (invocation.requestId !== undefined) trace.set('rid', invocation.requestId);
  if (invocation.traceparent !== undefined) trace.set('traceparent', invocation.traceparent);
  const suffix = trace.toString() ? `&${trace}` : '';
  switch (invocation.route) {
    case 'classify': {
      const query = new URLSearchParams(invocation.query).toString();
      return query ? query + suffix : suffix.slice(1);
    }
    case 'manifest':
      return `route=manifest${modelSuffix(invocation.model)}${suffix}`;
    case 'prototype-image':
      return `route=prototype-image&id=${encodeURIComponent(invocation.id)}${modelSuffix(invocation.model)}${suffix}`;
    case 'models':
      return `route=models${suffix}`;
  }
}

/** What the attributes ask for (a signature in them is ignored here: `verifyAttributes` checks it). */
export function readInvocation(attributes: string | null | undefined): Invocation {
  const params = new URLSearchParams(splitSignature(attributes ?? '')?.signed ?? attributes ?? '');
  // The trace is a label, never a reason to refuse: a malformed one is dropped.
  const requestId = RequestId.safeParse(params.get('rid')).data;
  const traceparent = Traceparent.safeParse(params.get('traceparent')).data;
  params.delete('rid');
  params.delete('traceparent');
  const trace = {
    ...(requestId === undefined ? {} : { requestId }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
  const route = params.get('route');
  if (route === null) return { route: 'classify', query: Object.fromEntries(params), ...trace };
  // The name is checked where it is used (parseModelQuery), as a query's would be.
  const model = params.get('model');
  const named = model === null ? {} : { model };
  if (route === 'manifest') return { route, ...named, ...trace };
  if (route === 'prototype-image') return { route, id: params.get('id') ?? '', ...named, ...trace };
  if (route === 'models') return { route, ...trace };
  throw new ProtocolError('bad_request', `unknown route "${route.slice(0, 40)}" in custom attributes`);
}

function modelSuffix(model: string | undefined): string {
  const q = new URLSearchParams(modelQuery(model)).toString();
  return q ? `&${q}` : '';
}

/** `attributes` with the edge's signature appended. */
export async function signAttributes(
  secret: string,
  attributes: string,
  body: Uint8Array,
  now = Date.now(),
): Promise<string> {
  const h = await signRequest(secret, { method: 'POST', path: `/invocations?${attributes}`, body }, now);
  return `${attributes ? `${attributes}&` : ''}pp-ts=${h[TIMESTAMP_HEADER]}&pp-sig=${h[SIGNATURE_HEADER]}`;
}

/** Whether attributes carry a signature at all (else the request must be signed by headers). */
export function hasSignedAttributes(attributes: string | null | undefined): boolean {
  return splitSignature(attributes ?? '') !== null;
}

/** Checks the signature `signAttributes` appended, over the attributes before it and the body. */
export function verifyAttributes(
  secret: string,
  attributes: string,
  body: Uint8Array,
  now = Date.now(),
): Promise<VerifyResult> {
  const carried = splitSignature(attributes);
  return verifyRequest(
    secret,
    { timestamp: carried?.timestamp, signature: carried?.signature },
    { method: 'POST', path: `/invocations?${carried?.signed ?? attributes}`, body },
    now,
  );
}

function splitSignature(header: string) {
  const m = /^(?:(.*)&)?pp-ts=(\d{1,12})&pp-sig=(v1=[0-9a-f]{64})$/.exec(header);
  return m ? { signed: m[1] ?? '', timestamp: m[2]!, signature: m[3]! } : null;
}
