// The explanation cache: content-addressed (id = sha256(model version ‖ tensor)), so entries never go stale.
import type { Explanation } from '@protopool/shared';

export interface ExplanationCache {
  /** Which layer this is, for X-Cache-Layer and logs. */
  readonly name: string;
  /**
   * null on a miss or an expired entry. Rejects with CorruptEntry (entry.ts) when the store holds something
   * that is not an Explanation, and with the store's own error when it fails: LayeredCache makes both misses.
   */
  get(id: string): Promise<Explanation | null>;
  put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void>;
}

export const ID_PATTERN = /^[0-9a-f]{64}$/;
