// A classification through the explanation cache: one canonical explanation per content id, computed by the
// backend on a miss and stored under the manifest's version, and the view of it the client asked for. Each
// model's explanations live under its own version, so models never share an entry.
import {
  type ClassifyOptions,
  type Explanation,
  explanationId,
  type ModelManifest,
  type ModelName,
  type RequestTrace,
  type WireTensor,
} from '@protopool/shared';
import type { LayeredCache } from './cache/layered';
import type { Backend } from './transport/backend';
import { CANONICAL, needsBypass, view } from './views';

export interface ClassifyDeps {
  backend: Backend;
  cache: LayeredCache;
  /** The model asked for (undefined: the backend's default) and its manifest. */
  model?: ModelName | undefined;
  manifest: ModelManifest;
  /** The backend answered for another version of the model: the manifest in hand is stale. */
  staleManifest(): void;
  /** Where the cache write runs (ctx.waitUntil): the response never waits for it. */
  background(p: Promise<unknown>): void;
  ttlSeconds: number;
  /** Forwarded with the backend call, so the backend logs it under the edge's request id. */
  trace?: RequestTrace;
}

export interface Classified {
  explanation: Explanation;
  cache: 'HIT' | 'MISS' | 'BYPASS';
  /** The layer that answered a hit. */
  layer: string | null;
  /** Milliseconds in the cache lookup and in the backend call (workerd's clock moves at I/O, which these are). */
  timings: { cache?: number; backend?: number };
}

export async function classifyThroughCache(
  d: ClassifyDeps,
  tensor: WireTensor,
  options: ClassifyOptions,
): Promise<Classified> {
  if (needsBypass(options)) {
    const started = Date.now();
    const explanation = await d.backend.explain(tensor, options, d.trace, d.model);
    return { explanation, cache: 'BYPASS', layer: null, timings: { backend: Date.now() - started } };
  }
  const id = await explanationId(d.manifest.version, tensor);
  const lookupStart = Date.now();
  const hit = await d.cache.get(id);
  const cache = Date.now() - lookupStart;
  if (hit)
    return { explanation: view(hit, options), cache: 'HIT', layer: d.cache.lastHitLayer, timings: { cache } };
  const backendStart = Date.now();
  const fresh = await d.backend.explain(tensor, CANONICAL, d.trace, d.model);
  const backend = Date.now() - backendStart;
  // Never store under the old version's id: the backend changed model since the manifest was read.
  if (fresh.modelVersion !== d.manifest.version) d.staleManifest();
  else d.background(d.cache.put(id, fresh, d.ttlSeconds));
  return { explanation: view(fresh, options), cache: 'MISS', layer: null, timings: { cache, backend } };
}
