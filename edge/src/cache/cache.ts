// The explanation cache: content-addressed (id = sha256(model version ‖ tensor)), so entries never go stale.
import type { Explanation } from '@protopool/shared';

export interface ExplanationCache {
  /** Which layer this is, for X-Cache-Layer and logs. */
  readonly name: string;
  get(id: string): Promise<Explanation | null>;
  put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void>;
}

export const ID_PATTERN = /^[0-9a-f]{64}$/;
