// Layered cache: Cache API (per colo) in front of KV (global); a KV hit fills the faster layer.
import type { Explanation } from '@protopool/shared';
import type { ExplanationCache } from './cache';

export class LayeredCache implements ExplanationCache {
  readonly name: string;
  /** The layer that answered the last hit, for X-Cache-Layer. */
  lastHitLayer: string | null = null;

  constructor(
    private readonly layers: ExplanationCache[],
    private readonly fillTtlSeconds = 3600,
    /** Where fills of faster layers run: ctx.waitUntil in a Worker, so responses never wait for them. */
    private readonly background: (p: Promise<unknown>) => void = (p) => void p,
  ) {
    this.name = `layered(${layers.map((l) => l.name).join('→')})`;
  }

  async get(id: string): Promise<Explanation | null> {
    for (const [i, layer] of this.layers.entries()) {
      const hit = await layer.get(id);
      if (hit) {
        this.lastHitLayer = layer.name;
        for (const faster of this.layers.slice(0, i))
          this.background(faster.put(id, hit, this.fillTtlSeconds));
        return hit;
      }
    }
    this.lastHitLayer = null;
    return null;
  }

  async put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    await Promise.all(this.layers.map((l) => l.put(id, explanation, ttlSeconds)));
  }
}
