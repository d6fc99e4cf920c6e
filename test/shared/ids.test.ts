// Explanation ids are content addresses: stable, input- and model-sensitive, identical in every runtime.
import { encodeFrame, explanationId, sha256Hex, tensor } from '@protopool/shared';
import { describe, expect, it } from 'vitest';

const V1 = `${'0'.repeat(63)}1`;
const V2 = `${'0'.repeat(63)}2`;

describe('explanation ids', () => {
  it('sha256 matches the FIPS 180-2 test vector for "abc"', async () => {
    expect(await sha256Hex(new Uint8Array([0x61, 0x62, 0x63]))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('is sha256 of the version bytes followed by the tensor frame', async () => {
    const t = tensor('float32', [1, 2], new Float32Array([0.5, -1]));
    const frame = encodeFrame(t);
    const joined = new Uint8Array(32 + frame.length);
    joined[31] = 1; // V1 as bytes
    joined.set(frame, 32);
    expect(await explanationId(V1, t)).toBe(await sha256Hex(joined));
    expect(await explanationId(V1, frame)).toBe(await explanationId(V1, t));
  });

  it('changes with the model version, the data and the shape', async () => {
    const a = tensor('float32', [1, 2], new Float32Array([0.5, -1]));
    const b = tensor('float32', [2, 1], new Float32Array([0.5, -1]));
    const c = tensor('float32', [1, 2], new Float32Array([0.5, -1.0000001]));
    const ids = await Promise.all([
      explanationId(V1, a),
      explanationId(V2, a),
      explanationId(V1, b),
      explanationId(V1, c),
    ]);
    expect(new Set(ids).size).toBe(4);
    expect(await explanationId(V1, a)).toBe(ids[0]);
  });

  it('refuses a malformed model version', async () => {
    await expect(explanationId('abc', new Uint8Array(8))).rejects.toThrow(/64 lowercase hex/);
  });
});
