// The API error shape every service returns, and how a zod failure becomes one.
import { z } from 'zod';

export const ErrorCode = z.enum([
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'backend_unavailable',
  'backend_timeout',
  'overloaded',
  'internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ApiError = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string().min(1),
    details: z.unknown().optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

export const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  backend_unavailable: 503,
  overloaded: 503,
  backend_timeout: 504,
};

export function apiError(code: ErrorCode, message: string, details?: unknown): ApiError {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/**
 * The one way a zod error is put into words, everywhere (API 400s, the CLI, model files, the edge's config):
 * one "path: message" line per issue, "(root)" for the whole value, each after `label` when given
 * (`field model.prototypes: Too small…` for files people edit).
 */
export function zodIssueLines(error: z.ZodError, label?: string): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(root)';
    return `${label ? `${label} ` : ''}${path}: ${issue.message}`;
  });
}

/** A 400 body whose message names every failing field, e.g. `options.topK: Too big: expected number to be <=20`. */
export function zodApiError(error: z.ZodError, what = 'request'): ApiError {
  const lines = zodIssueLines(error);
  return apiError('bad_request', `Invalid ${what}: ${lines.join('; ')}`, {
    issues: error.issues.map((issue) => ({
      path: issue.path.map(String),
      message: issue.message,
      code: issue.code,
    })),
  });
}

/**
 * A request the protocol refuses, with the code and words its client gets. Both tiers throw it from the
 * shared parsers and turn it into an `ApiError` response in one place (their `onError`).
 */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  /** A 400 naming every failing field (see `zodApiError`). */
  static fromZod(error: z.ZodError, what: string): ProtocolError {
    const { message, details } = zodApiError(error, what).error;
    return new ProtocolError('bad_request', message, details);
  }
}

/** Image bytes that cannot be decoded (corrupt, unsupported, too large): the sender's fault. */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}
