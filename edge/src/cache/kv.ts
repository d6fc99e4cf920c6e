// Workers KV explanation cache: global, eventually consistent, with a TTL (KV's minimum is 60 s).
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';

export class KvCache implements ExplanationCache {
  readonly name = 'kv';
  constructor(private readonly kv: KVNamespace) {}

  async get(id: string): Promise<Explanation | null> {
    return this.kv.get<Explanation>(`explanation:${id}`, 'json');
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    await this.kv.put(`explanation:${id}`, JSON.stringify(explanation), {
      expirationTtl: Math.max(60, ttlSeconds),
    });
  }
}
