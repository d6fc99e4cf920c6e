// What the explanation cache did, for metrics: hits per layer, misses, and the faults it made misses.

export interface CacheCounts {
  /** By layer name; a lookup counts once, for the layer that answered. */
  hits: Record<string, number>;
  /** Lookups no layer answered. */
  misses: number;
  readErrors: number;
  writeErrors: number;
  corrupt: number;
}

/** A read or a write that threw or rejected, or an entry that is not an Explanation. */
export type CacheFault = 'read' | 'write' | 'corrupt';
const COUNTER = { read: 'readErrors', write: 'writeErrors', corrupt: 'corrupt' } as const;

/** Mutable counters; share one per isolate, since a LayeredCache is built per request. */
export class CacheStats {
  private readonly counts: CacheCounts = { hits: {}, misses: 0, readErrors: 0, writeErrors: 0, corrupt: 0 };

  hit(layer: string): void {
    this.counts.hits[layer] = (this.counts.hits[layer] ?? 0) + 1;
  }

  miss(): void {
    this.counts.misses++;
  }

  fault(kind: CacheFault): void {
    this.counts[COUNTER[kind]]++;
  }

  /** A copy: readers can never change the counts. */
  snapshot(): CacheCounts {
    return { ...this.counts, hits: { ...this.counts.hits } };
  }
}
