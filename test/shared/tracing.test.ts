// The request trace both tiers share: which client ids are kept, which traceparents pass, and how the trace
// rides inside SageMaker's signed CustomAttributes.
import {
  type Invocation,
  invocationAttributes,
  readInvocation,
  requestIdOf,
  signAttributes,
  traceparentOf,
  verifyAttributes,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('request ids', () => {
  it('keep a client id of 1 to 128 characters from [A-Za-z0-9._:-]', () => {
    for (const id of ['a', 'req-42', 'svc.a:b_c-9', 'x'.repeat(128)]) expect(requestIdOf(id)).toBe(id);
  });

  it('replace a missing, empty, long or unsafe id by a fresh UUID v4', () => {
    const given = [
      undefined,
      null,
      '',
      'x'.repeat(129),
      'a b',
      'a\nb',
      'a"b',
      'é',
      '<script>',
      'a/b',
      'a%20b',
    ];
    const made = given.map(requestIdOf);
    for (const id of made) expect(id).toMatch(UUID);
    expect(new Set(made).size).toBe(given.length);
  });
});

describe('traceparent', () => {
  it('passes the W3C 55-character form as given', () => {
    expect(traceparentOf(TRACE)).toBe(TRACE);
    expect(traceparentOf('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')).toBeDefined();
  });

  it('drops version ff, zero ids, uppercase, wrong lengths and extra text', () => {
    for (const bad of [
      undefined,
      '',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      TRACE.toUpperCase(),
      TRACE.slice(0, -1),
      `${TRACE}-extra`,
      ` ${TRACE}`,
    ])
      expect(traceparentOf(bad), String(bad)).toBeUndefined();
  });
});

describe('the trace in CustomAttributes', () => {
  it('follows each route’s attributes and reads back, kept out of the classify query', () => {
    const trace = { requestId: 'req-7', traceparent: TRACE };
    expect(invocationAttributes({ route: 'manifest', ...trace })).toBe(
      `route=manifest&rid=req-7&traceparent=${TRACE}`,
    );
    expect(invocationAttributes({ route: 'classify', query: { topK: '5' }, requestId: 'r' })).toBe(
      'topK=5&rid=r',
    );
    expect(invocationAttributes({ route: 'classify', query: {}, requestId: 'r' })).toBe('rid=r');
    const invocations: Invocation[] = [
      { route: 'manifest', ...trace },
      { route: 'prototype-image', id: '7', ...trace },
      { route: 'classify', query: { topK: '5', explain: 'false' }, ...trace },
      { route: 'classify', query: {}, requestId: 'only-id' },
    ];
    for (const inv of invocations) expect(readInvocation(invocationAttributes(inv))).toEqual(inv);
  });

  it('drops an insane id or traceparent rather than refusing the request', () => {
    expect(readInvocation('topK=2&rid=a%20b&traceparent=nope')).toEqual({
      route: 'classify',
      query: { topK: '2' },
    });
  });

  it('is covered by the HMAC: changing the id breaks the signature', async () => {
    const body = new TextEncoder().encode('frame');
    const now = 1_700_000_000_000;
    const signed = await signAttributes(
      's',
      invocationAttributes({ route: 'manifest', requestId: 'r1' }),
      body,
      now,
    );
    expect(readInvocation(signed)).toEqual({ route: 'manifest', requestId: 'r1' });
    expect(await verifyAttributes('s', signed, body, now)).toEqual({ ok: true });
    expect((await verifyAttributes('s', signed.replace('rid=r1', 'rid=r2'), body, now)).ok).toBe(false);
  });
});
