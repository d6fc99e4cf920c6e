// The edge Worker: the public API in front of the ProtoPool backend.
import { apiError } from '@protopool/shared';
import { Hono } from 'hono';

export interface Env {
  BACKEND_TRANSPORT: string;
  BACKEND_URL: string;
  EXPLANATIONS: KVNamespace;
}

const app = new Hono<{ Bindings: Env }>();

app.get('/healthz', (c) =>
  c.json({ ok: true, runtime: navigator.userAgent, transport: c.env.BACKEND_TRANSPORT }),
);

app.notFound((c) =>
  c.json(apiError('not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`), 404),
);

app.onError((err, c) => {
  console.error('edge: unhandled error', err);
  return c.json(apiError('internal', 'internal error'), 500);
});

export default app;
