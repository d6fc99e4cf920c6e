// One knob for every fuzz suite: FUZZ_RUNS (runs per boundary; default small so `npm test` stays fast,
// `npm run fuzz` sets 10,000) and FUZZ_SEED (fixed by default: a failure reproduces with the printed seed).
// Works in Node and inside workerd (vitest.config.ts passes both as bindings, nodejs_compat puts them in
// process.env there too).

import fc from 'fast-check';

type EnvHolder = { process?: { env?: Record<string, string | undefined> } };
const env = (globalThis as EnvHolder).process?.env ?? {};

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${raw}: expected a positive integer`);
  return n;
}

/** Runs per boundary. */
export const FUZZ_RUNS = positive('FUZZ_RUNS', env.FUZZ_RUNS, 150);
/** fast-check seed shared by every property (a failure report names it). */
export const FUZZ_SEED = positive('FUZZ_SEED', env.FUZZ_SEED, 20_261_126);

/** fast-check parameters: `scale` × FUZZ_RUNS runs (at least 1), seeded. */
export function fuzzParams(scale = 1): { numRuns: number; seed: number } {
  return { numRuns: Math.max(1, Math.round(FUZZ_RUNS * scale)), seed: FUZZ_SEED };
}

/** A vitest timeout for a property of `scale` × FUZZ_RUNS runs of about `msPerRun` each (plus slack). */
export function fuzzTimeout(msPerRun: number, scale = 1): number {
  return 30_000 + Math.ceil(FUZZ_RUNS * scale * msPerRun * 3);
}

/** Awaits `p` but fails with a message naming `what` if it takes longer than `ms` (a hang is a failure). */
export async function within<T>(ms: number, what: string, p: Promise<T> | T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Statuses a malformed request may end in: a clear client error, never a 5xx. */
export function isClientError(status: number): boolean {
  return status >= 400 && status < 500;
}

/**
 * Byte-level mutations of a valid payload: up to `maxEdits` byte flips, an optional truncation, and up to
 * 16 appended garbage bytes.
 */
export function mutatedBytes(base: () => Uint8Array, maxEdits = 6): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: maxEdits }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      extra: fc.uint8Array({ maxLength: 16 }),
    })
    .map(({ edits, cut, extra }) => {
      const b = base().slice();
      for (const [at, v] of edits) if (b.length) b[at % b.length] = v;
      const cutAt = cut === undefined ? b.length : cut % (b.length + 1);
      const out = new Uint8Array(cutAt + extra.length);
      out.set(b.subarray(0, cutAt));
      out.set(extra, cutAt);
      return out;
    });
}
