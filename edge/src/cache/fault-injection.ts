// Test-only: a store outage on demand, for `npm run faults -- cache-outage` against `wrangler dev`.
//
// Off unless the Worker has the explicit var FAULT_INJECTION = "1" (the fault script passes it with
// `--var`; wrangler.toml never sets it), so production behaviour is unchanged when the var is absent: the
// header below is then ignored like any unknown header. With the var set, a request carrying
// `X-Fault-Injection: cache-outage` sees the KV binding and the Cache API fail on every read and every write
// (its background cache writes included). The bindings themselves are wrapped, not our adapters, so the
// adapters' own code runs into the failure as it would in a real outage.
//
// Why a per-request header rather than a toggle (a dev-only route, a KV key): it keeps no state, so a
// dev server can never be left in an outage, adds no route, needs no read of the store that is meant to be
// failing, and lets the fault script count exactly: every cache_fault line belongs to a request it marked.
// A real outage hits every request of a period; the script marks every request it sends in that period.

export const FAULT_INJECTION_HEADER = 'X-Fault-Injection';

/** True only when the dev-only var is "1" and the request asks for a cache outage. */
export function cacheOutageRequested(env: object, header: string | undefined): boolean {
  return (env as { FAULT_INJECTION?: unknown }).FAULT_INJECTION === '1' && header === 'cache-outage';
}

/** The binding with every method rejecting, as a store that is down would (the store is never called). */
export function failingBinding<T extends object>(binding: T, what: string): T {
  return new Proxy(binding, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      return () => Promise.reject(new Error(`${what}.${String(prop)}: injected outage (FAULT_INJECTION)`));
    },
  });
}
