// Node side of the edge suite: a real backend process (tiny model) and a local SageMaker-runtime
// stand-in in front of it, both on loopback; their URLs reach the workerd tests through `provide`.

import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type BackendProcess, startBackend, trainTinyModel } from '../helpers/backend-process';

export const EDGE_TEST_SECRET = 'edge-suite-secret';
let backend: BackendProcess | undefined;
let sagemaker: Server | undefined;

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Mimics the SageMaker runtime API for one endpoint: POST /endpoints/<name>/invocations with a SigV4
 * Authorization header; forwards to the container's /invocations with the CustomAttributes header only,
 * as SageMaker does (the edge's HMAC signature rides inside CustomAttributes).
 */
function sageMakerStandIn(target: string, endpoint: string): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    const path = `/endpoints/${endpoint}/invocations`;
    if (req.method !== 'POST' || req.url !== path) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ message: 'Endpoint not found' }));
      return;
    }
    if (
      !/^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-east-1\/sagemaker\/aws4_request, SignedHeaders=.+, Signature=[0-9a-f]{64}$/.test(
        auth,
      )
    ) {
      res
        .writeHead(403, { 'content-type': 'application/json' })
        .end(JSON.stringify({ message: 'missing or malformed SigV4 signature' }));
      return;
    }
    const payload = await body(req);
    // Like SageMaker: only the body, content type and CustomAttributes reach the container.
    const headers: Record<string, string> = {
      'x-amzn-sagemaker-custom-attributes': String(req.headers['x-amzn-sagemaker-custom-attributes'] ?? ''),
    };
    if (req.headers['content-type']) headers['content-type'] = String(req.headers['content-type']);
    const upstream = await fetch(`${target}/invocations`, { method: 'POST', headers, body: payload });
    const bytes = new Uint8Array(await upstream.arrayBuffer());
    if (upstream.status >= 400) {
      // SageMaker reports container errors as ModelError (424) carrying the original status and body.
      res.writeHead(424, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          OriginalStatusCode: upstream.status,
          OriginalMessage: new TextDecoder().decode(bytes),
        }),
      );
      return;
    }
    res
      .writeHead(upstream.status, {
        'content-type': upstream.headers.get('content-type') ?? 'application/json',
      })
      .end(bytes);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` }),
    ),
  );
}

export default async function setup(project: TestProject) {
  const modelDir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-edge-')));
  backend = await startBackend(['--model', modelDir], { PROTOPOOL_HMAC_SECRET: EDGE_TEST_SECRET });
  const sm = await sageMakerStandIn(backend.url, 'protopool-test');
  sagemaker = sm.server;
  project.provide('backendUrl', backend.url);
  project.provide('sagemakerUrl', sm.url);
  return async () => {
    await backend?.stop();
    await new Promise<void>((resolve) => (sagemaker ? sagemaker.close(() => resolve()) : resolve()));
  };
}
