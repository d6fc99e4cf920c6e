// Requests the edge suites send: a classify body, and a call to an app of their own (its own isolate state).
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { encodeFrame, TENSOR_MEDIA_TYPE, type WireTensor } from '@protopool/shared';
import { createApp } from '../../edge/src/app';
import type { Env } from '../../edge/src/env';
import { HttpBackend } from '../../edge/src/transport/http';
import { auth, env } from './env';

export const frameBody = (t: WireTensor) => ({
  method: 'POST',
  body: encodeFrame(t),
  headers: { ...auth(), 'content-type': TENSOR_MEDIA_TYPE },
});

/** Calls an app built by the test and waits for its background cache writes. */
export async function call(app: ReturnType<typeof createApp>, path: string, init: RequestInit, e: Env = env) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge${path}`, init), e, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/**
 * An app on the real backend over HTTP until `takeDown()`, then on a port nothing listens on (connection
 * refused, as a backend that went away): what the edge does when its backend stops answering.
 */
export function appWithBackendSwitch() {
  let down = false;
  const app = createApp({
    backend: (cfg) =>
      new HttpBackend({
        baseUrl: down ? 'http://127.0.0.1:9' : cfg.BACKEND_URL!,
        secret: cfg.PROTOPOOL_HMAC_SECRET,
        timeoutMs: 2000,
      }),
  });
  return {
    app,
    takeDown: () => {
      down = true;
    },
  };
}
