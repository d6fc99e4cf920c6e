// Explanation cache in isolate memory, LRU-bounded with TTLs: production's first layer (before Cache API and KV).
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';
import { decodeEntry } from './entry';

export class MemoryCache implements ExplanationCache {
  readonly name = 'memory';
  private readonly entries = new Map<string, { value: string; expires: number }>();

  constructor(
    private readonly maxEntries = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(id: string): Promise<Explanation | null> {
    const e = this.entries.get(id);
    if (!e) return null;
    if (e.expires <= this.now()) {
      this.entries.delete(id);
      return null;
    }
    // Re-insert: Map keeps insertion order, so the oldest-used entry is always first.
    this.entries.delete(id);
    this.entries.set(id, e);
    // Validated like the stores' entries: put takes whatever it is given, so a bad value cannot get out.
    return decodeEntry(e.value);
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    this.entries.delete(id);
    // Stored serialised: callers can never mutate a cached explanation through a shared reference.
    this.entries.set(id, { value: JSON.stringify(explanation), expires: this.now() + ttlSeconds * 1000 });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}
