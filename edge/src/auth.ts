// API keys (Authorization: Bearer <key>, checked as SHA-256 hashes) and a per-key rate limit.
import { sha256Hex } from '@protopool/shared';

/** Returns the matching key hash, or null. Only hashes are configured, so a leaked config leaks no key. */
export async function verifyApiKey(
  header: string | undefined,
  hashes: readonly string[],
): Promise<string | null> {
  const match = /^Bearer\s+(\S{8,512})$/.exec(header ?? '');
  if (!match) return null;
  const hash = await sha256Hex(new TextEncoder().encode(match[1]));
  return hashes.includes(hash) ? hash : null;
}

/**
 * Token bucket per key: `perMinute` requests, refilled continuously. Per isolate — Workers run many
 * isolates, so this bounds each isolate's share; a global limit needs Cloudflare's rate-limit binding.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** 0 when allowed, else seconds until the next token. */
  take(key: string): number {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: t };
    b.tokens = Math.min(this.perMinute, b.tokens + ((t - b.at) / 60_000) * this.perMinute);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 60) / this.perMinute));
  }
}
