// The edge→backend signature scheme, checked against an independent HMAC (RFC 4231) and for every refusal.
import {
  canonicalString,
  SIGNATURE_HEADER,
  signature,
  signRequest,
  TIMESTAMP_HEADER,
  verifyRequest,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';

const enc = new TextEncoder();
const req = { method: 'post', path: '/invocations?topK=5', body: enc.encode('{"x":1}') };
const NOW = 1_800_000_000_000;

describe('request signing', () => {
  it('signs the canonical string timestamp\\nMETHOD\\npath\\nsha256(body)', async () => {
    expect(await canonicalString('1800000000', req)).toBe(
      // sha256('{"x":1}') computed with `printf '{"x":1}' | sha256sum`.
      '1800000000\nPOST\n/invocations?topK=5\n5041bf1f713df204784353e82f6a4a535931cb64f1f4b4a5aeaffcb720918b22',
    );
  });

  it('is HMAC-SHA256 of that string, as openssl computes it', async () => {
    // printf '1800000000\nPOST\n/invocations?topK=5\n5041…8b22' | openssl dgst -sha256 -hmac s3cret
    expect(await signature('s3cret', '1800000000', req)).toBe(
      'v1=2a710eee01890084f53f80e4c7149692b03abd489b45a459b5ce7744d9de37ed',
    );
    expect(await signRequest('s3cret', req, NOW)).toEqual({
      [TIMESTAMP_HEADER]: '1800000000',
      [SIGNATURE_HEADER]: 'v1=2a710eee01890084f53f80e4c7149692b03abd489b45a459b5ce7744d9de37ed',
    });
  });

  it('verifies its own signature and refuses tampering, staleness and missing headers', async () => {
    const headers = await signRequest('s3cret', req, NOW);
    const h = { timestamp: headers[TIMESTAMP_HEADER], signature: headers[SIGNATURE_HEADER] };
    expect(await verifyRequest('s3cret', h, req, NOW)).toEqual({ ok: true });
    expect(await verifyRequest('s3cret', h, req, NOW + 299_000)).toEqual({ ok: true });
    expect(await verifyRequest('wrong', h, req, NOW)).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
    const tampered = { ...req, body: enc.encode('{"x":2}') };
    expect((await verifyRequest('s3cret', h, tampered, NOW)).ok).toBe(false);
    expect((await verifyRequest('s3cret', h, { ...req, path: '/invocations?topK=6' }, NOW)).ok).toBe(false);
    expect((await verifyRequest('s3cret', h, { ...req, method: 'PUT' }, NOW)).ok).toBe(false);
    expect(await verifyRequest('s3cret', h, req, NOW + 301_000)).toMatchObject({
      ok: false,
      reason: /stale/,
    });
    expect(await verifyRequest('s3cret', h, req, NOW - 301_000)).toMatchObject({
      ok: false,
      reason: /stale/,
    });
    expect(await verifyRequest('s3cret', { ...h, signature: null }, req, NOW)).toMatchObject({
      reason: /missing/,
    });
    expect(await verifyRequest('s3cret', { ...h, timestamp: '12a' }, req, NOW)).toMatchObject({
      reason: /unix seconds/,
    });
  });

  it('refuses a signature that differs in one hex digit, is cut short, has upper case or another scheme', async () => {
    const h = await signRequest('s3cret', req, NOW);
    const good = h[SIGNATURE_HEADER]!;
    const flip = (c: string) => (c === '0' ? '1' : '0');
    for (const bad of [
      `${good.slice(0, -1)}${flip(good.at(-1)!)}`,
      good.slice(0, -2),
      good.toUpperCase(),
      good.replace('v1=', 'v2='),
      '',
    ]) {
      const r = await verifyRequest('s3cret', { timestamp: h[TIMESTAMP_HEADER], signature: bad }, req, NOW);
      expect(r).toMatchObject({ ok: false });
    }
  });
});
