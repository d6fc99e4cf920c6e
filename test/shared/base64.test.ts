import { decodeBase64, encodeBase64 } from '@protopool/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

describe('base64', () => {
  it('matches RFC 4648 test vectors', () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of cases) {
      expect(encodeBase64(new TextEncoder().encode(plain))).toBe(encoded);
      expect(new TextDecoder().decode(decodeBase64(encoded)!)).toBe(plain);
    }
  });

  it('agrees with the platform btoa on arbitrary bytes and round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const encoded = encodeBase64(bytes);
        expect(encoded).toBe(btoa(String.fromCharCode(...bytes)));
        expect(decodeBase64(encoded)).toEqual(bytes);
      }),
    );
  });

  it('refuses non-base64 text instead of guessing', () => {
    for (const bad of ['A', 'AAA', 'AA=A', '====', 'Zg==Zg==', 'Z\u00e9==', 'Zh==']) {
      expect(decodeBase64(bad)).toBeNull();
    }
  });
});
