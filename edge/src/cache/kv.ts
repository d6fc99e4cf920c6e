// Workers KV explanation cache: global, eventually consistent, with a TTL (KV's own minimum is 60 s).
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';
import { decodeEntry, isExpired } from './entry';

/** The entry's expiry by our clock (epoch ms): exact below KV's 60 s minimum too (see isExpired). */
type Stamp = { expiresAt?: unknown };

export class KvCache implements ExplanationCache {
  readonly name = 'kv';
  constructor(
    private readonly kv: KVNamespace,
    private readonly now: () => number = Date.now,
  ) {}

  /** The entry's key: public so an operator (or a test) can inspect, replace or delete an entry. */
  key(id: string): string {
    return `explanation:${id}`;
  }

  async get(id: string): Promise<Explanation | null> {
    const { value, metadata } = await this.kv.getWithMetadata<Stamp>(this.key(id), 'text');
    if (value === null || isExpired(metadata?.expiresAt, this.now())) return null;
    return decodeEntry(value);
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    await this.kv.put(this.key(id), JSON.stringify(explanation), {
      expirationTtl: Math.max(60, ttlSeconds),
      metadata: { expiresAt: this.now() + ttlSeconds * 1000 } satisfies Stamp,
    });
  }
}
