// Fuzzing the shared contract beyond wire.test.ts: structured frame headers under the model's limits,
// the base64 codec, the model-input check, the request schemas and HMAC verification. Every input ends in
// a value or a typed error with a message — never another exception, never a hang. Runs in Node and in workerd.
import {
  asModelInput,
  ClassifyQuery,
  ClassifyRequest,
  decodeBase64,
  decodeFrame,
  decodeJson,
  encodeBase64,
  MAX_CLOCK_SKEW_SECONDS,
  signRequest,
  TensorFormatError,
  tensor,
  verifyRequest,
  type WireTensor,
  zodApiError,
} from '@protopool/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FUZZ_RUNS, fuzzParams, fuzzTimeout } from '../helpers/fuzz';

const INPUT = { height: 28, width: 28, channels: 1 };
const LIMITS = { maxElements: 28 * 28 };

/** A frame with a valid magic and fuzzed header fields, dims and data length. */
const arbHeaderFrame = fc
  .record({
    version: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 255 })),
    dtype: fc.oneof(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 255 })),
    flags: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
    dims: fc.array(
      fc.oneof(
        fc.constantFrom(1, 28),
        fc.integer({ min: 0, max: 70_000 }),
        fc.constantFrom(0xffffffff, 0x80000000, 65_536, 65_537),
      ),
      { maxLength: 8 },
    ),
    rankDelta: fc.oneof(fc.constant(0), fc.integer({ min: -2, max: 3 })),
    dataBytes: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 4 * 28 * 28 + 8 })),
  })
  .map(({ version, dtype, flags, dims, rankDelta, dataBytes }) => {
    const rank = Math.max(0, Math.min(255, dims.length + rankDelta));
    const item = dtype === 3 ? 1 : 4;
    const want = dims.reduce((a, b) => a * b, 1) * item;
    const len = dataBytes < 0 ? Math.min(want, 4 * 28 * 28 + 8) : dataBytes;
    const f = new Uint8Array(8 + 4 * dims.length + len);
    f.set([0x50, 0x50, 0x54, 0x46, version, dtype, rank, flags]);
    const view = new DataView(f.buffer);
    dims.forEach((d, i) => {
      view.setUint32(8 + 4 * i, d, true);
    });
    return f;
  });

function refusedOrOk(f: () => WireTensor): WireTensor | TensorFormatError {
  try {
    return f();
  } catch (err) {
    if (err instanceof TensorFormatError && err.message.length > 0) return err;
    throw err;
  }
}

describe('tensor frames under the model limits', () => {
  it(
    'decodes or refuses every fuzzed header with a TensorFormatError, in bounded time, within the limit',
    () => {
      fc.assert(
        fc.property(arbHeaderFrame, (frame) => {
          const t0 = performance.now();
          const r = refusedOrOk(() => decodeFrame(frame, LIMITS));
          // Header checks come before any allocation: even a frame declaring 2^32 elements is refused at once.
          expect(performance.now() - t0).toBeLessThan(250);
          if (!(r instanceof TensorFormatError)) {
            expect(r.data.length).toBeLessThanOrEqual(LIMITS.maxElements);
            expect(r.shape.reduce((a, b) => a * b, 1)).toBe(r.data.length);
            // What passes the decoder is a model input or a clear refusal, never anything else.
            refusedOrOk(() => asModelInput(r, INPUT));
          }
        }),
        fuzzParams(2),
      );
    },
    fuzzTimeout(1, 2),
  );

  it(
    'asModelInput accepts exactly float32 [28,28,1] and [1,28,28,1], naming the expected shape otherwise',
    () => {
      const arb = fc.record({
        dtype: fc.constantFrom('float32', 'int32', 'uint8'),
        shape: fc.oneof(
          fc.constantFrom<number[]>([28, 28, 1], [1, 28, 28, 1], [2, 28, 28, 1], [28, 28], [1, 28, 1, 28]),
          fc
            .array(fc.constantFrom<number>(1, 2, 28, 784), { maxLength: 5 })
            .filter((s) => s.reduce((a, b) => a * b, 1) <= 4 * 784),
        ),
      });
      fc.assert(
        fc.property(arb, ({ dtype, shape }) => {
          const n = shape.reduce((a, b) => a * b, 1);
          const data =
            dtype === 'float32'
              ? new Float32Array(n)
              : dtype === 'int32'
                ? new Int32Array(n)
                : new Uint8Array(n);
          const r = refusedOrOk(() =>
            asModelInput(tensor(dtype as 'uint8', shape, data as Uint8Array), INPUT),
          );
          const ok =
            dtype === 'float32' &&
            (JSON.stringify(shape) === '[28,28,1]' || JSON.stringify(shape) === '[1,28,28,1]');
          if (ok) expect((r as WireTensor).shape).toEqual([1, 28, 28, 1]);
          else
            expect((r as TensorFormatError).message).toMatch(
              /dtype must be float32|shape must be \[28, 28, 1\]/,
            );
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(1),
  );

  it(
    'decodeJson under the limits refuses oversized or malformed tensors with a message',
    () => {
      const arb = fc.record({
        dtype: fc.oneof(fc.constantFrom('float32', 'int32', 'uint8'), fc.string({ maxLength: 8 })),
        shape: fc.oneof(
          fc.array(fc.oneof(fc.integer({ min: -3, max: 70_000 }), fc.double()), { maxLength: 8 }),
          fc.jsonValue(),
        ),
        data: fc.oneof(
          fc.uint8Array({ maxLength: 3200 }).map(encodeBase64),
          fc.string({ maxLength: 40 }),
          fc.jsonValue(),
        ),
      });
      fc.assert(
        fc.property(arb, (value) => {
          const r = refusedOrOk(() => decodeJson(value, LIMITS));
          if (!(r instanceof TensorFormatError))
            expect(r.data.length).toBeLessThanOrEqual(LIMITS.maxElements);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(1),
  );
});

describe('base64', () => {
  it(
    'decodes any string to bytes or null (never throws), and only canonical text round-trips',
    () => {
      const b64ish = fc
        .array(fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n'), {
          maxLength: 64,
        })
        .map((cs) => cs.join(''));
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 64 }), b64ish, fc.base64String()), (text) => {
          const bytes = decodeBase64(text);
          if (bytes !== null) expect(encodeBase64(bytes)).toBe(text);
        }),
        fuzzParams(3),
      );
    },
    fuzzTimeout(0.2, 3),
  );
});

describe('request schemas', () => {
  it(
    'ClassifyRequest and ClassifyQuery parse or fail with a message naming a field, never throwing',
    () => {
      const near = fc.record(
        {
          image: fc.oneof(
            fc.record(
              {
                mediaType: fc.oneof(fc.constantFrom('image/png', 'image/jpeg'), fc.string()),
                data: fc.string(),
              },
              { requiredKeys: [] },
            ),
            fc.jsonValue(),
          ),
          tensor: fc.oneof(
            fc.record({ dtype: fc.string(), shape: fc.jsonValue(), data: fc.string() }, { requiredKeys: [] }),
            fc.jsonValue(),
          ),
          options: fc.oneof(
            fc.record(
              {
                explain: fc.oneof(fc.boolean(), fc.jsonValue()),
                topK: fc.oneof(fc.integer({ min: -5, max: 30 }), fc.double(), fc.string()),
                explainTopK: fc.jsonValue(),
              },
              { requiredKeys: [] },
            ),
            fc.jsonValue(),
          ),
          constructor: fc.jsonValue(),
        },
        { requiredKeys: [] },
      );
      // What JSON.parse makes of a hostile body: an own "__proto__" key.
      const hostile = fc
        .jsonValue()
        .map((v) => JSON.parse(`{"__proto__": {"polluted": 1}, "options": ${JSON.stringify(v) ?? 'null'}}`));
      const query = fc.dictionary(
        fc.oneof(fc.constantFrom('topK', 'explain', 'explainTopK', '__proto__', 'constructor'), fc.string()),
        fc.oneof(
          fc.constantFrom('1', '3', '20', '21', '0', '-1', 'true', 'false', '1e1', ' 3', '0x3'),
          fc.string(),
        ),
      );
      fc.assert(
        fc.property(fc.oneof(near, hostile, fc.jsonValue()), query, (body, q) => {
          const parsed = ClassifyRequest.safeParse(body);
          if (!parsed.success) expect(zodApiError(parsed.error, 'request body').error.message).toMatch(/\S/);
          const pq = ClassifyQuery.safeParse(q);
          if (pq.success) {
            if (pq.data.topK !== undefined) expect(pq.data.topK).toBeGreaterThanOrEqual(1);
            if (pq.data.topK !== undefined) expect(pq.data.topK).toBeLessThanOrEqual(20);
          } else expect(zodApiError(pq.error, 'query').error.message).toMatch(/query/);
          // Parsing never pollutes prototypes.
          expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(1),
  );
});

describe('HMAC verification', () => {
  const body = new Uint8Array([1, 2, 3]);
  const req = { method: 'POST', path: '/invocations', body };
  const NOW = 1_800_000_000_000;

  it(
    'refuses arbitrary timestamp and signature headers with a reason, never throwing',
    async () => {
      const header = fc.oneof(
        fc.constant(undefined),
        fc.constant(null),
        fc.string({ maxLength: 80 }),
        fc.integer({ min: 0, max: 2 ** 40 }).map(String),
        fc.stringMatching(/^v1=[0-9a-f]{64}$/),
      );
      await fc.assert(
        fc.asyncProperty(header, header, async (timestamp, signature) => {
          const r = await verifyRequest('s3cret', { timestamp, signature }, req, NOW);
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.reason).toMatch(/\S/);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(1),
  );

  it(
    'accepts a genuine signature only within the 300 s window, on either side (a replay later is refused)',
    async () => {
      const secret = 'fuzz-secret';
      const signed = await signRequest(secret, req, NOW);
      const h = { timestamp: signed['X-ProtoPool-Timestamp'], signature: signed['X-ProtoPool-Signature'] };
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: -900, max: 900 }), async (skew) => {
          const r = await verifyRequest(secret, h, req, NOW + skew * 1000);
          expect(r.ok).toBe(Math.abs(skew) <= MAX_CLOCK_SKEW_SECONDS);
          if (!r.ok) expect(r.reason).toMatch(/stale or future timestamp/);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(1),
  );
});

it('FUZZ_RUNS is a positive integer', () => {
  expect(Number.isInteger(FUZZ_RUNS) && FUZZ_RUNS > 0).toBe(true);
});
