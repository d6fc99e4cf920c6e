// The model manifest, fetched from the backend and kept per isolate for a short TTL.
import type { ModelManifest, RequestTrace } from '@protopool/shared';
import type { Backend } from './transport/backend';

export class ManifestCache {
  private value: ModelManifest | null = null;
  private fetchedAt = 0;
  private inFlight: Promise<ModelManifest> | null = null;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** `trace`: the request whose miss fetches (concurrent requests share one fetch, under the first's id). */
  async get(backend: Backend, trace?: RequestTrace): Promise<ModelManifest> {
    if (this.value && this.now() - this.fetchedAt < this.ttlMs) return this.value;
    // Concurrent requests share one fetch.
    this.inFlight ??= backend
      .manifest(trace)
      .then((m) => {
        this.value = m;
        this.fetchedAt = this.now();
        return m;
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  /** The last manifest seen, even if stale: lets cached lookups work while the backend is down. */
  get last(): ModelManifest | null {
    return this.value;
  }

  /** A backend answer from another model version means the model changed: fetch afresh next time. */
  invalidate(): void {
    this.fetchedAt = 0;
  }
}
