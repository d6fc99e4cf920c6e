// The /v2 routes in the real `protopool serve` process: probes and metadata unsigned, inference signed.
//
// "The 'server live' API can be used directly to implement the Kubernetes livenessProbe", "the 'server ready'
// health API … readinessProbe" (Predict Protocol - Version 2, "Health"): a probe cannot sign, so those routes
// answer without a signature; inference takes the HMAC signature /invocations takes.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, signRequest, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendProcess, startBackend, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const SECRET = 'oip-test-secret-not-for-production';
let backend: BackendProcess;
const image = seededArray(784, 11);

async function signed(path: string, body: string | Uint8Array, type: string, secret = SECRET) {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  const headers = await signRequest(secret, { method: 'POST', path, body: bytes });
  return fetch(backend.url + path, {
    method: 'POST',
    headers: { ...headers, 'content-type': type },
    body: bytes,
  });
}

const request = JSON.stringify({
  id: 'k8s-1',
  inputs: [{ name: 'input', shape: [1, 28, 28, 1], datatype: 'FP32', data: [...image] }],
});

beforeAll(async () => {
  const dir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-oip-serve-')));
  backend = await startBackend(['--model', dir], { PROTOPOOL_HMAC_SECRET: SECRET });
});

afterAll(async () => {
  await backend?.stop();
});

describe('protopool serve with a secret', () => {
  it.each([
    '/v2',
    '/v2/health/live',
    '/v2/health/ready',
    '/v2/models/protopool',
    '/v2/models/protopool/ready',
  ])('answers GET %s without a signature', async (path) => {
    const res = await fetch(backend.url + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('refuses an unsigned or wrongly signed inference, before the model', async () => {
    const unsigned = await fetch(`${backend.url}/v2/models/protopool/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: request,
    });
    expect(unsigned.status).toBe(401);
    const wrong = await signed('/v2/models/protopool/infer', request, 'application/json', 'other-secret');
    expect(wrong.status).toBe(401);
  });

  it('answers a signed inference with the explanation a signed /invocations gives', async () => {
    const res = await signed('/v2/models/protopool/infer', request, 'application/json');
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      model_name: string;
      id: string;
      outputs: { name: string; data: (number | string)[] }[];
    };
    expect(body).toMatchObject({ model_name: 'protopool', id: 'k8s-1' });
    const sagemaker = await signed(
      '/invocations',
      encodeFrame(tensor('float32', [1, 28, 28, 1], image)),
      TENSOR_MEDIA_TYPE,
    );
    const explanation = body.outputs.find((o) => o.name === 'explanation')!.data[0] as string;
    expect(JSON.parse(explanation)).toEqual(await sagemaker.json());
  });
});
