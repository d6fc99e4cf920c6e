// Node side of the edge suite: a real backend process serving two models (a tiny one, the default, and the
// shipped parts model: another input size and class list) and a local SageMaker-runtime stand-in in front of
// it, both on loopback; their URLs and what the models' own files say reach the workerd tests through `provide`.

import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type BackendProcess, ROOT, startBackend, trainTinyModel } from '../helpers/backend-process';

export const EDGE_TEST_SECRET = 'edge-suite-secret';
let backend: BackendProcess | undefined;
let sagemaker: Server | undefined;
let logs: Server | undefined;

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

/** The backend process's log lines so far, as a JSON array, for the tracing suite to read from workerd. */
function logsServer(b: BackendProcess): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(b.logs));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` }),
    ),
  );
}

/**
 * Images of every kind the edge accepts, with the input tensor the backend's own preprocessing makes of
 * them (Node, its codecs initialised the Node way): the workerd suite checks it gets the same bytes.
 */
async function preprocessingFixtures(modelDir: string) {
  const { initImageCodecs } = await import('../../gpu-backend/src/data/image-node');
  const { imageToInput } = await import('@protopool/shared/image');
  const { ModelManifest } = await import('@protopool/shared');
  const { readFile } = await import('node:fs/promises');
  const { png, jpeg } = await import('../helpers/image-files');
  await initImageCodecs();
  const manifest = ModelManifest.parse(JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')));
  const w = 37;
  const h = 23; // not the model size, not square: resizing and aspect handling are exercised
  const rgb = Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + Math.floor(i / 7) * 11) % 256);
  const grey = rgb.filter((_, i) => i % 3 === 0);
  const rgba = Array.from({ length: w * h }, (_, i) => [
    rgb[3 * i]!,
    rgb[3 * i + 1]!,
    rgb[3 * i + 2]!,
    200,
  ]).flat();
  const palette = Array.from({ length: w * h }, (_, i) => [(i % 5) * 50, (i % 3) * 80, 90]).flat();
  const images: Record<string, Uint8Array> = {
    'image/png grey': png('grey', w, h, grey),
    'image/png rgb': png('rgb', w, h, rgb),
    'image/png rgba': png('rgba', w, h, rgba),
    'image/png palette': png('palette', w, h, palette),
    'image/jpeg rgb': await jpeg(w, h, rgb, 90),
  };
  const out: Record<string, { image: string; tensor: string }> = {};
  for (const [name, bytes] of Object.entries(images)) {
    const t = await imageToInput(bytes, manifest.input);
    out[name] = {
      image: Buffer.from(bytes).toString('base64'),
      tensor: Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64'),
    };
  }
  return out;
}

/**
 * What each served model's own directory says (its manifest, a prototype's PNG file) and the tensor the
 * backend's preprocessing makes of an image no other suite sends: the values the multi-model tests compare
 * against.
 */
async function servedModels(models: { name: string; dir: string }[]) {
  const { imageToInput } = await import('@protopool/shared/image');
  const { ModelManifest } = await import('@protopool/shared');
  const { readFile } = await import('node:fs/promises');
  const { png } = await import('../helpers/image-files');
  const [w, h] = [41, 29];
  const image = png(
    'rgb',
    w,
    h,
    Array.from({ length: w * h * 3 }, (_, i) => (i * 53 + Math.floor(i / 11) * 7) % 256),
  );
  const served = await Promise.all(
    models.map(async ({ name, dir }) => {
      const manifest = ModelManifest.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
      // The highest id: the parts model has ids the tiny model's pool of 12 cannot have.
      const id = Math.max(...manifest.prototypes.filter((p) => p.source).map((p) => p.id));
      // The backend's own code (initialised the Node way by preprocessingFixtures) makes this model's tensor.
      const t = await imageToInput(image, manifest.input);
      return {
        name,
        version: manifest.version,
        classes: manifest.classes,
        input: manifest.input,
        prototype: {
          id,
          png: (await readFile(join(dir, 'prototypes', `${id}.png`))).toString('base64'),
        },
        imageTensor: Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64'),
      };
    }),
  );
  return { image: Buffer.from(image).toString('base64'), models: served };
}

export default async function setup(project: TestProject) {
  const modelDir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-edge-')));
  const preprocessing = await preprocessingFixtures(modelDir);
  project.provide('preprocessing', preprocessing);
  // The tiny model first: it stays the default, so the suites that name no model see it as before.
  const models = [
    { name: 'tiny', dir: modelDir },
    { name: 'parts', dir: join(ROOT, 'models', 'parts') },
  ];
  project.provide('servedModels', await servedModels(models));
  backend = await startBackend(
    models.flatMap((m) => ['--model', `${m.name}=${m.dir}`]),
    { PROTOPOOL_HMAC_SECRET: EDGE_TEST_SECRET },
  );
  const sm = await sageMakerStandIn(backend.url, 'protopool-test');
  sagemaker = sm.server;
  project.provide('backendUrl', backend.url);
  project.provide('sagemakerUrl', sm.url);
  const l = await logsServer(backend);
  logs = l.server;
  project.provide('backendLogsUrl', l.url);
  return async () => {
    await backend?.stop();
    await new Promise<void>((resolve) => (sagemaker ? sagemaker.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (logs ? logs.close(() => resolve()) : resolve()));
  };
}
