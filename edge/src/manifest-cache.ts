// The manifests of the models clients ask for, fetched from the backend and kept per isolate for a short TTL,
// each under the name it was asked by (undefined: the default model), each with its own TTL and fallback.
import type { ModelManifest, ModelName, RequestTrace } from '@protopool/shared';
import { Kept } from './kept';
import type { Backend } from './transport/backend';

export class ManifestCache {
  private readonly byModel = new Map<ModelName | undefined, Kept<ModelManifest>>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** `trace`: the request whose miss fetches (concurrent requests share one fetch, under the first's id). */
  async get(backend: Backend, trace?: RequestTrace, model?: ModelName): Promise<ModelManifest> {
    let kept = this.byModel.get(model);
    if (!kept) {
      kept = new Kept<ModelManifest>(this.ttlMs, this.now);
      this.byModel.set(model, kept);
    }
    try {
      return await kept.get(() => backend.manifest(trace, model));
    } catch (err) {
      // Only names the backend answered for keep an entry: clients cannot grow the map with made-up names.
      if (kept.last === null && this.byModel.get(model) === kept) this.byModel.delete(model);
      throw err;
    }
  }

  /** The last manifest seen for `model`, even if stale: lets cached lookups work while the backend is down. */
  last(model?: ModelName): ModelManifest | null {
    return this.byModel.get(model)?.last ?? null;
  }

  /** A backend answer from another version of `model` means it changed: fetch its manifest afresh next time. */
  invalidate(model?: ModelName): void {
    this.byModel.get(model)?.invalidate();
  }
}
