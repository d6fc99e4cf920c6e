// The backend service as a real process on loopback: the SageMaker contract, HMAC, limits, batching, drain.
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiError,
  Explanation,
  encodeFrame,
  encodeJson,
  explanationId,
  ModelManifest,
  signRequest,
  TENSOR_MEDIA_TYPE,
  tensor,
} from '@protopool/shared';
import UPNG from 'upng-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendProcess, CLI, startBackend, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const SECRET = 'test-secret-not-for-production';
let modelDir: string;
let backend: BackendProcess;
let version: string;

const image = tensor('float32', [1, 28, 28, 1], seededArray(784, 11));

async function call(
  path: string,
  init: {
    method?: string;
    body?: Uint8Array | string;
    type?: string;
    secret?: string | null;
    now?: number;
  } = {},
) {
  const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
  const body =
    typeof init.body === 'string' ? new TextEncoder().encode(init.body) : (init.body ?? new Uint8Array());
  const headers: Record<string, string> = init.type ? { 'content-type': init.type } : {};
  if (init.secret !== null)
    Object.assign(headers, await signRequest(init.secret ?? SECRET, { method, path, body }, init.now));
  return fetch(backend.url + path, { method, headers, body: method === 'GET' ? undefined : body });
}

beforeAll(async () => {
  modelDir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-serve-')));
  backend = await startBackend(['--model', modelDir], { PROTOPOOL_HMAC_SECRET: SECRET });
  version = ModelManifest.parse(await (await call('/v1/model')).json()).version;
});

afterAll(async () => {
  await backend?.stop();
});

describe('SageMaker contract', () => {
  it('GET /ping answers 200 with the engine and model, without a signature', async () => {
    const res = await fetch(`${backend.url}/ping`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ok',
      engine: 'wasm (SIMD, 1 thread); native kernels off: not used with --engine wasm',
      model: version,
      queue: 0,
    });
  });

  it('POST /invocations with a binary tensor frame returns a schema-valid explanation with its content id', async () => {
    const res = await call('/invocations', { body: encodeFrame(image), type: TENSOR_MEDIA_TYPE });
    expect(res.status).toBe(200);
    const e = Explanation.parse(await res.json());
    expect(e.id).toBe(await explanationId(version, image));
    expect(e.modelVersion).toBe(version);
    expect(e.topK).toHaveLength(3);
    expect(e.classes).toHaveLength(1);
  });

  it('gives the same explanation for the JSON form, and honours query options', async () => {
    const binary = await (
      await call('/invocations', { body: encodeFrame(image), type: TENSOR_MEDIA_TYPE })
    ).json();
    const json = await (
      await call('/v1/explain', {
        body: JSON.stringify({ tensor: encodeJson(image) }),
        type: 'application/json',
      })
    ).json();
    expect(json).toEqual(binary);
    const short = Explanation.parse(
      await (
        await call('/invocations?explain=false&topK=5', { body: encodeFrame(image), type: TENSOR_MEDIA_TYPE })
      ).json(),
    );
    expect(short.classes).toEqual([]);
    expect(short.topK).toHaveLength(5);
  });

  it('serves the manifest and prototypes, 404 for unknown or path-like ids', async () => {
    const manifest = ModelManifest.parse(await (await call('/v1/model')).json());
    const id = manifest.prototypes[0]!.id;
    const p = await (await call(`/v1/prototypes/${id}`)).json();
    expect(p).toMatchObject({ id, source: manifest.prototypes[0]!.source });
    for (const bad of ['999', '..%2F..%2Fmodel.json', 'abc']) {
      const res = await call(`/v1/prototypes/${bad}`);
      expect(res.status).toBe(404);
      ApiError.parse(await res.json());
    }
  });
});

describe('encoded images', () => {
  it('accepts PNG and JPEG bodies and JSON base64 images, preprocessed as the manifest says', async () => {
    const { png, jpeg } = await import('../helpers/image-files');
    const { initImageCodecs } = await import('../../gpu-backend/src/data/image-node');
    const { imageToInput } = await import('@protopool/shared/image');
    await initImageCodecs();
    const manifest = ModelManifest.parse(await (await call('/v1/model')).json());
    const rgb = Array.from({ length: 30 * 20 * 3 }, (_, i) => (i * 13) % 256);
    for (const [type, bytes] of [
      ['image/png', png('rgb', 30, 20, rgb)],
      ['image/jpeg', await jpeg(30, 20, rgb, 90)],
    ] as const) {
      const expected = await explanationId(
        version,
        tensor('float32', [1, 28, 28, 1], await imageToInput(new Uint8Array(bytes), manifest.input)),
      );
      const raw = Explanation.parse(
        await (await call('/invocations', { body: new Uint8Array(bytes), type })).json(),
      );
      expect(raw.id).toBe(expected);
      const json = await call('/invocations', {
        body: JSON.stringify({ image: { mediaType: type, data: Buffer.from(bytes).toString('base64') } }),
        type: 'application/json',
      });
      expect(Explanation.parse(await json.json()).id).toBe(expected);
    }
    const corrupt = await call('/invocations', {
      body: new Uint8Array(png('rgb', 30, 20, rgb)).subarray(0, 50),
      type: 'image/png',
    });
    expect(corrupt.status).toBe(400);
    expect(ApiError.parse(await corrupt.json()).error.message).toMatch(
      /cannot read the image\/png image: corrupt PNG/,
    );
  });
});

describe('prototype pictures', () => {
  it('serves each projected prototype’s source patch as a PNG of the recorded box, enlarged', async () => {
    const manifest = ModelManifest.parse(await (await call('/v1/model')).json());
    const p = manifest.prototypes.find((q) => q.source)!;
    const res = await call(`/v1/prototypes/${p.id}/image`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    const png = UPNG.decode(await res.arrayBuffer());
    const { x0, y0, x1, y1 } = p.source!.box;
    const scale = Math.max(1, Math.ceil(96 / Math.min(x1 - x0, y1 - y0)));
    expect([png.width, png.height]).toEqual([(x1 - x0) * scale, (y1 - y0) * scale]);
    expect((await call('/v1/prototypes/999/image')).status).toBe(404);
  });
});

describe('authentication', () => {
  it.each([
    ['no signature', { secret: null }, /missing X-ProtoPool-Timestamp/],
    ['a wrong secret', { secret: 'other' }, /signature does not match/],
    ['a stale timestamp', { now: Date.now() - 301_000 }, /stale or future timestamp/],
  ])('refuses %s with 401 before the model', async (_name, init, message) => {
    const res = await call('/invocations', { body: encodeFrame(image), type: TENSOR_MEDIA_TYPE, ...init });
    expect(res.status).toBe(401);
    const body = ApiError.parse(await res.json());
    expect(body.error.message).toMatch(message);
    expect(JSON.stringify(body)).not.toContain(SECRET);
  });

  it('refuses a signed body that was swapped in transit', async () => {
    const headers = await signRequest(SECRET, {
      method: 'POST',
      path: '/invocations',
      body: encodeFrame(image),
    });
    const other = encodeFrame(tensor('float32', [1, 28, 28, 1], seededArray(784, 12)));
    const res = await fetch(`${backend.url}/invocations`, {
      method: 'POST',
      headers: { ...headers, 'content-type': TENSOR_MEDIA_TYPE },
      body: other,
    });
    expect(res.status).toBe(401);
  });

  it('will not start without a secret unless --insecure is given', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--model', modelDir, '--port', '0'], {
      env: { ...process.env, PROTOPOOL_HMAC_SECRET: '' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/PROTOPOOL_HMAC_SECRET is not set/);
  });
});

describe('bad input', () => {
  const frame = (shape: number[], data: Float32Array) => encodeFrame(tensor('float32', shape, data));

  it.each([
    [
      'a wrong shape',
      () => frame([1, 27, 28, 1], new Float32Array(27 * 28)),
      400,
      /shape must be \[28, 28, 1\]/,
    ],
    ['NaN pixels', () => frame([784], new Float32Array(784).fill(Number.NaN)), 400, /element 0 is NaN/],
    [
      'a truncated frame',
      () => frame([1, 28, 28, 1], new Float32Array(784)).subarray(0, 100),
      400,
      /truncated/,
    ],
    [
      'too many elements',
      () => frame([2, 28, 28, 1], new Float32Array(1568)),
      400,
      /exceeds the limit of 784/,
    ],
  ])('answers %s with a clear 4xx', async (_name, body, status, message) => {
    const res = await call('/invocations', { body: body(), type: TENSOR_MEDIA_TYPE });
    expect(res.status).toBe(status);
    expect(ApiError.parse(await res.json()).error.message).toMatch(message);
  });

  it('answers unknown media types 415, invalid JSON 400 with the field named, huge bodies 413', async () => {
    expect((await call('/invocations', { body: 'x', type: 'text/plain' })).status).toBe(415);
    const bad = await call('/invocations', {
      body: JSON.stringify({ tensor: { dtype: 'float32' } }),
      type: 'application/json',
    });
    expect(bad.status).toBe(400);
    expect(ApiError.parse(await bad.json()).error.message).toMatch(/tensor.shape/);
    const huge = await call('/invocations', {
      body: new Uint8Array(9 * 1024 * 1024),
      type: TENSOR_MEDIA_TYPE,
    });
    expect(huge.status).toBe(413);
    // The server is still healthy.
    expect((await fetch(`${backend.url}/ping`)).status).toBe(200);
  });
});

describe('queue limits and shutdown', () => {
  it('answers 503 with Retry-After when the queue is full, and drains in-flight work on SIGTERM', async () => {
    const slow = await startBackend(['--model', modelDir, '--max-queue', '1', '--max-wait-ms', '400'], {
      PROTOPOOL_HMAC_SECRET: SECRET,
    });
    try {
      const body = encodeFrame(image);
      const send = async () =>
        fetch(`${slow.url}/invocations`, {
          method: 'POST',
          headers: {
            ...(await signRequest(SECRET, { method: 'POST', path: '/invocations', body })),
            'content-type': TENSOR_MEDIA_TYPE,
          },
          body,
        });
      const first = send();
      await new Promise((r) => setTimeout(r, 100)); // the first waits 400 ms in the batcher
      const second = await send();
      expect(second.status).toBe(503);
      expect(second.headers.get('retry-after')).toBe('1');
      // SIGTERM while the first is still queued: it completes, then the process exits cleanly.
      const exit = slow.stop('SIGTERM');
      const done = await first;
      expect(done.status).toBe(200);
      Explanation.parse(await done.json());
      expect(await exit).toBe(0);
      expect(slow.logs.join('\n')).toMatch(/"event":"stopped"/);
    } finally {
      await slow.stop('SIGKILL');
    }
  });
});
