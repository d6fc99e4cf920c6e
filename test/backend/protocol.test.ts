// The classify protocol against the real backend process: by signed headers, and as SageMaker delivers it
// (the query and the signature inside CustomAttributes, the only header SageMaker forwards).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CUSTOM_ATTRIBUTES_HEADER,
  invocationAttributes,
  ModelList,
  ModelManifest,
  signAttributes,
  signRequest,
} from '@protopool/shared';
import { afterAll, beforeAll } from 'vitest';
import { type BackendProcess, ROOT, startBackend, trainTinyModel } from '../helpers/backend-process';
import { type ClassifyCall, protocolContract } from '../protocol/contract';

const SECRET = 'protocol-suite-secret';
let backend: BackendProcess;
let manifest: ModelManifest;
let models: ModelList;

beforeAll(async () => {
  const modelDir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-protocol-')));
  // The tiny model, the default, and the shipped parts model beside it (another input size, other classes).
  backend = await startBackend(
    ['--model', `tiny=${modelDir}`, '--model', `parts=${join(ROOT, 'models', 'parts')}`],
    {
      PROTOPOOL_HMAC_SECRET: SECRET,
    },
  );
  const get = async (path: string) => {
    const headers = await signRequest(SECRET, { method: 'GET', path, body: new Uint8Array() });
    return (await fetch(backend.url + path, { headers })).json();
  };
  manifest = ModelManifest.parse(await get('/v1/model'));
  models = ModelList.parse(await get('/v1/models'));
});

afterAll(async () => {
  await backend?.stop();
});

const body = (call: ClassifyCall) =>
  typeof call.body === 'string' ? new TextEncoder().encode(call.body) : call.body;
const typed = (call: ClassifyCall): Record<string, string> =>
  call.type === undefined ? {} : { 'content-type': call.type };

protocolContract('backend, signed headers', () => ({
  manifest: async () => manifest,
  models: async () => models,
  classify: async (call) => {
    const path = `/invocations${call.query ? `?${call.query}` : ''}`;
    const signed = await signRequest(SECRET, { method: 'POST', path, body: body(call) });
    return fetch(backend.url + path, {
      method: 'POST',
      headers: { ...typed(call), ...signed },
      body: body(call),
    });
  },
}));

protocolContract('backend, as SageMaker forwards it', () => ({
  manifest: async () => manifest,
  models: async () => models,
  classify: async (call) => {
    const query = Object.fromEntries(new URLSearchParams(call.query ?? ''));
    const attributes = await signAttributes(
      SECRET,
      invocationAttributes({ route: 'classify', query }),
      body(call),
    );
    return fetch(`${backend.url}/invocations`, {
      method: 'POST',
      headers: { ...typed(call), [CUSTOM_ATTRIBUTES_HEADER]: attributes },
      body: body(call),
    });
  },
}));
