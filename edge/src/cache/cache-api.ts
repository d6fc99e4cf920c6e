// Cache API explanation cache: per colo, fastest; keyed by a synthetic URL per id.
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';

export class CacheApiCache implements ExplanationCache {
  readonly name = 'cache-api';
  constructor(
    private readonly cache: Cache,
    /** A host we own, so keys can never collide with real URLs cached by other code. */
    private readonly origin = 'https://explanations.protopool.internal',
  ) {}

  private key(id: string): Request {
    return new Request(`${this.origin}/v1/explanations/${id}`);
  }

  async get(id: string): Promise<Explanation | null> {
    const res = await this.cache.match(this.key(id));
    return res ? ((await res.json()) as Explanation) : null;
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    const res = new Response(JSON.stringify(explanation), {
      headers: { 'content-type': 'application/json', 'cache-control': `public, max-age=${ttlSeconds}` },
    });
    await this.cache.put(this.key(id), res);
  }
}
