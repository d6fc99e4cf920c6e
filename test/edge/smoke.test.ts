// The edge Worker boots inside workerd (not Node) and answers through its real fetch handler.

import { describe, expect, it } from 'vitest';
import { worker } from './worker';

describe('edge smoke', () => {
  it('runs inside the Workers runtime, not Node', () => {
    expect(navigator.userAgent).toBe('Cloudflare-Workers');
    expect(
      typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node,
    ).not.toBe('undefined'); // nodejs_compat provides process, but the runtime is still workerd:
    expect(typeof WebSocketPair).toBe('function');
  });

  it('serves /healthz from the Worker', async () => {
    const res = await worker.fetch('http://edge/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, runtime: 'Cloudflare-Workers', transport: 'http' });
  });

  it('answers unknown routes with the shared error shape', async () => {
    const res = await worker.fetch('http://edge/nope');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no route for GET /nope' } });
  });
});
