// Request tracing across the tiers: the id every response carries, and the W3C traceparent passed through.
import { z } from 'zod';

export const REQUEST_ID_HEADER = 'X-Request-Id';
export const TRACEPARENT_HEADER = 'traceparent';

/** Ids we keep and log: short, and nothing that could forge a log line or a header (no spaces, quotes, newlines). */
export const RequestId = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/);

/**
 * W3C trace-context `traceparent`, the 55-character form: version (never ff), a trace id and a parent id
 * that are not all zeros, flags; lowercase hex only, as the spec requires.
 */
export const Traceparent = z
  .string()
  .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
  .refine((t) => !t.startsWith('ff-') && !/^..-0{32}-/.test(t) && !/-0{16}-..$/.test(t));

/** What one request carries from the edge to the backend so both tiers' log lines can be joined. */
export const RequestTrace = z.object({
  requestId: RequestId.optional(),
  traceparent: Traceparent.optional(),
});
export type RequestTrace = z.infer<typeof RequestTrace>;

/** The client's id when it is sane, else a fresh random one. */
export function requestIdOf(given: string | null | undefined): string {
  const kept = RequestId.safeParse(given);
  return kept.success ? kept.data : crypto.randomUUID();
}

/** The traceparent when it is well formed, else undefined (a malformed one is dropped, never repaired). */
export function traceparentOf(given: string | null | undefined): string | undefined {
  const valid = Traceparent.safeParse(given);
  return valid.success ? valid.data : undefined;
}
