// Layered cache: fastest layer first (memory, Cache API, KV); a hit fills the faster layers.
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';
import { CorruptEntry } from './entry';
import { type CacheCounts, type CacheFault, CacheStats } from './stats';

/**
 * A layer that fails or holds a corrupt entry is a miss there, counted and logged: the backend can still
 * answer, so no cache fault ever fails or delays a request.
 */
export class LayeredCache implements ExplanationCache {
  readonly name: string;
  /** The layer that answered the last hit, for X-Cache-Layer. */
  lastHitLayer: string | null = null;

  constructor(
    private readonly layers: ExplanationCache[],
    private readonly fillTtlSeconds = 3600,
    /** Where fills of faster layers run: ctx.waitUntil in a Worker, so responses never wait for them. */
    private readonly background: (p: Promise<unknown>) => void = (p) => void p,
    /** Pass the isolate's counters to count across requests. */
    private readonly counters = new CacheStats(),
  ) {
    this.name = `layered(${layers.map((l) => l.name).join('→')})`;
  }

  async get(id: string): Promise<Explanation | null> {
    for (const [i, layer] of this.layers.entries()) {
      const hit = await this.read(layer, id);
      if (hit) {
        this.counters.hit(layer.name);
        this.lastHitLayer = layer.name;
        // Every faster layer missed, failed or held a corrupt entry: each gets the good one.
        for (const faster of this.layers.slice(0, i))
          this.background(this.write(faster, id, hit, this.fillTtlSeconds));
        return hit;
      }
    }
    this.counters.miss();
    this.lastHitLayer = null;
    return null;
  }

  /** Resolves once every layer has been tried; never rejects. */
  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    await Promise.all(this.layers.map((l) => this.write(l, id, explanation, ttlSeconds)));
  }

  stats(): CacheCounts {
    return this.counters.snapshot();
  }

  // Both catch a synchronous throw too (it happens inside the try), so nothing escapes into a request or
  // into waitUntil.
  private async read(layer: ExplanationCache, id: string): Promise<Explanation | null> {
    try {
      return await layer.get(id);
    } catch (err) {
      this.fault(err instanceof CorruptEntry ? 'corrupt' : 'read', layer, id, err);
      return null;
    }
  }

  private async write(
    layer: ExplanationCache,
    id: string,
    e: Explanation,
    ttlSeconds: number,
  ): Promise<void> {
    try {
      await layer.put(id, e, ttlSeconds);
    } catch (err) {
      this.fault('write', layer, id, err);
    }
  }

  private fault(kind: CacheFault, layer: ExplanationCache, id: string, err: unknown): void {
    this.counters.fault(kind);
    // One JSON line: the layer, the id (a content hash) and the error's message. Never the entry's bytes
    // or a stack; our adapters' messages hold no secrets, and they are cut short all the same.
    const line = JSON.stringify({
      event: 'cache_fault',
      fault: kind,
      layer: layer.name,
      id,
      error: (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300),
    });
    // A corrupt entry heals itself (the next put replaces it); a failing store is an outage.
    if (kind === 'corrupt') console.warn(line);
    else console.error(line);
  }
}
