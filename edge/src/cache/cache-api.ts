// Cache API explanation cache: per colo, fastest; keyed by a synthetic URL per id.
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';
import { decodeEntry, isExpired } from './entry';

/** The entry's expiry by our clock (epoch ms); see isExpired for why max-age alone is not enough. */
const EXPIRES = 'x-protopool-expires';

export class CacheApiCache implements ExplanationCache {
  readonly name = 'cache-api';
  constructor(
    private readonly cache: Cache,
    private readonly now: () => number = Date.now,
    /** A host we own, so keys can never collide with real URLs cached by other code. */
    private readonly origin = 'https://explanations.protopool.internal',
  ) {}

  /** The entry's key: public so an operator (or a test) can inspect, replace or delete an entry. */
  key(id: string): Request {
    return new Request(`${this.origin}/v1/explanations/${id}`);
  }

  async get(id: string): Promise<Explanation | null> {
    const res = await this.cache.match(this.key(id));
    if (!res) return null;
    const expires = res.headers.get(EXPIRES);
    if (isExpired(expires === null ? undefined : Number(expires), this.now())) return null;
    return decodeEntry(await res.text());
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    const res = new Response(JSON.stringify(explanation), {
      headers: {
        'content-type': 'application/json',
        'cache-control': `public, max-age=${ttlSeconds}`,
        [EXPIRES]: String(this.now() + ttlSeconds * 1000),
      },
    });
    await this.cache.put(this.key(id), res);
  }
}
