// The edge's error responses: the shared ApiError shape with the matching HTTP status.
import { apiError, type ErrorCode, HTTP_STATUS } from '@protopool/shared';
import type { Context } from 'hono';

export function fail(
  c: Context,
  code: ErrorCode,
  message: string,
  details?: unknown,
  headers?: Record<string, string>,
) {
  for (const [k, v] of Object.entries(headers ?? {})) c.header(k, v);
  return c.json(apiError(code, message, details), HTTP_STATUS[code] as 400);
}
