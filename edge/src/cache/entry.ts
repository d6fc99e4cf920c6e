// A stored entry read back: an Explanation, expired, or corrupt (which callers treat as a miss, never a 500).
import { Explanation, zodIssueLines } from '@protopool/shared';

/** What a store held is not an Explanation: bytes cut short, or an entry written under an older schema. */
export class CorruptEntry extends Error {
  override name = 'CorruptEntry';
}

/** Parses and validates: whatever a store returns, only an Explanation reaches a client. */
export function decodeEntry(text: string): Explanation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CorruptEntry('stored bytes are not JSON');
  }
  const parsed = Explanation.safeParse(value);
  // The first issue names a field, never a value: the message is for logs.
  if (!parsed.success) throw new CorruptEntry(`not an Explanation: ${zodIssueLines(parsed.error)[0]}`);
  return parsed.data;
}

/**
 * Every entry carries its own expiry (epoch ms: KV metadata, a Cache API header), checked on read against
 * the adapter's clock, rather than trusting the stores' expiry alone, because:
 * - KV cannot expire anything sooner than 60 s, so shorter TTLs were silently stretched;
 * - the stores expire by workerd's own clock, which fake timers do not move: a test of expiry had to sleep;
 * - one injectable clock then governs every layer alike, as it already did the memory layer.
 * The stores' own expiry stays, as their garbage collection. An entry without a stamp (written before stamps
 * existed, or a stamp that is not a number) is left to the store's expiry.
 */
export function isExpired(expiresAt: unknown, now: number): boolean {
  return typeof expiresAt === 'number' && expiresAt <= now;
}
