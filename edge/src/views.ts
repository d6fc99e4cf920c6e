// What the cache holds versus what a client asked for: one canonical explanation per id, many views.
import { type ClassifyOptions, type Explanation, MAX_TOP_K } from '@protopool/shared';

/** The options the cached, canonical explanation is computed with: every score, the predicted class's evidence. */
export const CANONICAL: ClassifyOptions = { explain: true, topK: MAX_TOP_K, explainTopK: false };

/** Evidence for several classes is not in the canonical entry: such requests go to the backend uncached. */
export function needsBypass(o: ClassifyOptions): boolean {
  return o.explain && o.explainTopK;
}

export function view(e: Explanation, o: ClassifyOptions): Explanation {
  return { ...e, topK: e.topK.slice(0, o.topK), classes: o.explain ? e.classes : [] };
}
