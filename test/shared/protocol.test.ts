// The pieces of the edge↔backend protocol both tiers call: options from body and query, and the SageMaker
// CustomAttributes scheme (routes, options and the HMAC signature in one header).
import {
  type Invocation,
  invocationAttributes,
  optionsQuery,
  ProtocolError,
  parseClassifyQuery,
  readInvocation,
  resolveOptions,
  signAttributes,
  signature,
  verifyAttributes,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';

describe('classify options', () => {
  it('are the defaults, then the body, then the query', () => {
    expect(resolveOptions({}, {})).toEqual({ explain: true, topK: 3, explainTopK: false });
    expect(resolveOptions({ topK: 7, explain: false }, {})).toEqual({
      explain: false,
      topK: 7,
      explainTopK: false,
    });
    const query = parseClassifyQuery({ topK: '2', explain: '1', explainTopK: undefined });
    expect(resolveOptions({ topK: 7, explain: false, explainTopK: true }, query)).toEqual({
      explain: true,
      topK: 2,
      explainTopK: true,
    });
  });

  it('read back from the query they are written to', () => {
    const o = { explain: false, topK: 5, explainTopK: true };
    expect(resolveOptions({}, parseClassifyQuery(optionsQuery(o)))).toEqual(o);
  });

  it('refuse a bad query parameter as a 400 naming it', () => {
    const err = (() => {
      try {
        parseClassifyQuery({ topK: 'many' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).toMatchObject({
      code: 'bad_request',
      message: 'Invalid query: topK: Invalid input: expected number, received NaN',
    });
  });
});

describe('SageMaker CustomAttributes', () => {
  const secret = 'attributes-secret';
  const body = new TextEncoder().encode('frame bytes');
  const now = 1_700_000_000_000;

  it('name each route and read back to it', () => {
    expect(invocationAttributes({ route: 'manifest' })).toBe('route=manifest');
    expect(invocationAttributes({ route: 'prototype-image', id: '7' })).toBe('route=prototype-image&id=7');
    expect(invocationAttributes({ route: 'classify', query: { topK: '5', explain: 'false' } })).toBe(
      'topK=5&explain=false',
    );
    expect(invocationAttributes({ route: 'models' })).toBe('route=models');
    expect(invocationAttributes({ route: 'manifest', model: 'parts' })).toBe('route=manifest&model=parts');
    expect(invocationAttributes({ route: 'prototype-image', id: '7', model: 'fashion-mnist' })).toBe(
      'route=prototype-image&id=7&model=fashion-mnist',
    );
    const routes: Invocation[] = [
      { route: 'manifest' },
      { route: 'manifest', model: 'parts' },
      { route: 'prototype-image', id: '7' },
      { route: 'prototype-image', id: '7', model: 'parts' },
      { route: 'models' },
      { route: 'classify', query: { topK: '5', explain: 'false' } },
      { route: 'classify', query: { topK: '5', model: 'parts' } },
    ];
    for (const inv of routes) expect(readInvocation(invocationAttributes(inv))).toEqual(inv);
    expect(readInvocation(undefined)).toEqual({ route: 'classify', query: {} });
    expect(() => readInvocation('route=shell')).toThrow('unknown route "shell" in custom attributes');
  });

  it('carry the HMAC of POST /invocations?<attributes> after the attributes, as hmac.ts defines it', async () => {
    const signed = await signAttributes(secret, 'topK=5', body, now);
    const mac = await signature(secret, '1700000000', { method: 'POST', path: '/invocations?topK=5', body });
    expect(signed).toBe(`topK=5&pp-ts=1700000000&pp-sig=${mac}`);
    expect(readInvocation(signed)).toEqual({ route: 'classify', query: { topK: '5' } });
    expect(await verifyAttributes(secret, signed, body, now)).toEqual({ ok: true });
    // Empty attributes sign the path "/invocations?" and carry the signature alone.
    expect(await signAttributes(secret, '', body, now)).toMatch(/^pp-ts=1700000000&pp-sig=v1=[0-9a-f]{64}$/);
  });

  it('refuse changed attributes, a changed body, another secret, an old signature and none', async () => {
    const signed = await signAttributes(secret, 'topK=5', body, now);
    const refused = async (attributes: string, b = body, key = secret, at = now) =>
      (await verifyAttributes(key, attributes, b, at)).ok;
    expect(await refused(signed.replace('topK=5', 'topK=6'))).toBe(false);
    expect(await refused(signed, new TextEncoder().encode('other bytes'))).toBe(false);
    expect(await refused(signed, body, 'another secret')).toBe(false);
    expect(await refused(signed, body, secret, now + 301_000)).toBe(false);
    expect(await refused('topK=5')).toBe(false);
  });
});
