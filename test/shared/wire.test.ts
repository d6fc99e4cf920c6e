// The tensor wire format: bit-exact round trips, and every malformed input refused with a message.
import {
  decodeFrame,
  decodeJson,
  encodeFrame,
  encodeJson,
  TensorFormatError,
  tensor,
  type WireTensor,
} from '@protopool/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const RUNS = 300;

/** Arbitrary tensors of every dtype, any bit pattern a finite float32 can have (incl. -0 and subnormals). */
const arbShape = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 });
const arbTensor: fc.Arbitrary<WireTensor> = arbShape.chain((shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return fc.oneof(
    fc
      .array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n })
      .map((v) => tensor('float32', shape, Float32Array.from(v))),
    fc
      .array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n })
      .map((v) => tensor('int32', shape, Int32Array.from(v))),
    fc.uint8Array({ minLength: n, maxLength: n }).map((v) => tensor('uint8', shape, v)),
  );
});

function bits(t: WireTensor): number[] {
  return [...new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)];
}

/** Decoding must either succeed or throw a TensorFormatError with a message, never anything else. */
function outcome(decode: () => WireTensor): 'ok' | TensorFormatError {
  try {
    decode();
    return 'ok';
  } catch (err) {
    if (err instanceof TensorFormatError && err.message.length > 0) return err;
    throw err;
  }
}

describe('binary frame', () => {
  it('lays out magic, version, dtype, rank, dims and little-endian data as specified', () => {
    const frame = encodeFrame(tensor('float32', [2, 1], new Float32Array([1, -2])));
    // Hand-computed: "PPTF", v1, dtype 1, rank 2, flags 0, dims 2 and 1 as u32 LE, then 1.0f and -2.0f LE.
    expect([...frame]).toEqual([
      0x50, 0x50, 0x54, 0x46, 1, 1, 2, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00,
      0xc0,
    ]);
  });

  it('round-trips every tensor bit-exactly', () => {
    fc.assert(
      fc.property(arbTensor, (t) => {
        const back = decodeFrame(encodeFrame(t));
        expect(back.dtype).toBe(t.dtype);
        expect(back.shape).toEqual(t.shape);
        expect(bits(back)).toEqual(bits(t));
      }),
      { numRuns: RUNS },
    );
  });

  it('decodes from an unaligned view of a larger buffer', () => {
    const frame = encodeFrame(tensor('float32', [3], new Float32Array([0.1, 0.2, 0.3])));
    const host = new Uint8Array(frame.length + 3);
    host.set(frame, 3);
    expect([...decodeFrame(host.subarray(3)).data]).toEqual([...new Float32Array([0.1, 0.2, 0.3])]);
  });

  it('refuses every truncation of a valid frame', () => {
    fc.assert(
      fc.property(arbTensor, fc.nat(), (t, cut) => {
        const frame = encodeFrame(t);
        const len = cut % frame.length; // strictly shorter
        const result = outcome(() => decodeFrame(frame.subarray(0, len)));
        expect(result).toBeInstanceOf(TensorFormatError);
        expect((result as TensorFormatError).code).toMatch(/truncated|length_mismatch/);
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses trailing bytes', () => {
    const frame = encodeFrame(tensor('uint8', [2], new Uint8Array([1, 2])));
    const longer = new Uint8Array([...frame, 9]);
    expect(() => decodeFrame(longer)).toThrow(/needs 2 data bytes, got 3/);
  });

  it.each([
    ['bad magic', (f: Uint8Array) => f.set([0x50, 0x4b], 0), /first 4 bytes must be "PPTF"/],
    ['future version', (f: Uint8Array) => (f[4] = 2), /version 2 is not supported/],
    ['unknown dtype', (f: Uint8Array) => (f[5] = 9), /unknown dtype code 9/],
    ['reserved flags', (f: Uint8Array) => (f[7] = 1), /reserved flags byte must be 0/],
    ['rank beyond limit', (f: Uint8Array) => (f[6] = 7), /rank 7 exceeds the limit of 6/],
    ['zero dimension', (f: Uint8Array) => f.set([0, 0, 0, 0], 8), /dimension 0 is 0/],
    ['huge dimension', (f: Uint8Array) => f.set([0xff, 0xff, 0xff, 0xff], 8), /dimension 0 is 4294967295/],
  ])('refuses a frame with %s', (_name, corrupt, message) => {
    const frame = encodeFrame(tensor('float32', [2, 2], new Float32Array([1, 2, 3, 4])));
    corrupt(frame);
    expect(() => decodeFrame(frame)).toThrow(message);
  });

  it('refuses shapes beyond the element limit before reading data', () => {
    const frame = encodeFrame(tensor('uint8', [4, 4], new Uint8Array(16)));
    expect(() => decodeFrame(frame, { maxElements: 15 })).toThrow(/exceeds the limit of 15 elements/);
  });

  it.each([NaN, Infinity, -Infinity])('refuses %s in float data, naming the element', (bad) => {
    const frame = encodeFrame(tensor('float32', [3], new Float32Array([0, 1, 2])));
    new DataView(frame.buffer).setFloat32(frame.length - 4, bad, true);
    expect(() => decodeFrame(frame)).toThrow(/element 2 is (NaN|-?Infinity); tensors must be finite/);
    expect(decodeFrame(frame, { allowNonFinite: true }).data[2]).toBe(bad);
  });

  it('never throws anything but a TensorFormatError on arbitrary or mutated bytes', () => {
    const mutated = fc
      .tuple(arbTensor, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
      .map(([t, edits]) => {
        const f = encodeFrame(t);
        for (const [at, v] of edits) f[at % f.length] = v;
        return f;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
        outcome(() => decodeFrame(bytes));
      }),
      { numRuns: RUNS * 3 },
    );
  });
});

describe('JSON form', () => {
  it('encodes data as base64 of the little-endian bytes', () => {
    expect(encodeJson(tensor('int32', [2], new Int32Array([1, -1])))).toEqual({
      dtype: 'int32',
      shape: [2],
      data: 'AQAAAP////8=',
    });
  });

  it('round-trips every tensor bit-exactly, through JSON text too', () => {
    fc.assert(
      fc.property(arbTensor, (t) => {
        const back = decodeJson(JSON.parse(JSON.stringify(encodeJson(t))));
        expect(back.shape).toEqual(t.shape);
        expect(bits(back)).toEqual(bits(t));
      }),
      { numRuns: RUNS },
    );
  });

  it.each([
    [null, /tensor JSON invalid at \(root\)/],
    [{ dtype: 'float64', shape: [1], data: 'AAAAAA==' }, /invalid at dtype/],
    [{ dtype: 'uint8', shape: [0], data: '' }, /invalid at shape.0/],
    [{ dtype: 'uint8', shape: [1.5], data: 'AA==' }, /invalid at shape.0/],
    [{ dtype: 'uint8', shape: [1, 1, 1, 1, 1, 1, 1], data: 'AA==' }, /invalid at shape/],
    [{ dtype: 'uint8', shape: [2], data: 'AA==' }, /needs 2 data bytes, got 1/],
    [{ dtype: 'uint8', shape: [1], data: 'A*==' }, /not canonical base64/],
    [{ dtype: 'uint8', shape: [1], data: 'AB==' }, /not canonical base64/],
    [{ dtype: 'float32', shape: [1], data: 'AADAfw==' }, /element 0 is NaN/],
  ])('refuses %j', (value, message) => {
    expect(() => decodeJson(value)).toThrow(message);
  });

  it('never throws anything but a TensorFormatError on arbitrary JSON', () => {
    const near = fc.record({
      dtype: fc.constantFrom('float32', 'int32', 'uint8', 'x'),
      shape: fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 7 }),
      data: fc.oneof(fc.base64String(), fc.string()),
    });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), near), (value) => {
        outcome(() => decodeJson(value));
      }),
      { numRuns: RUNS * 3 },
    );
  });
});
