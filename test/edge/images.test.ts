// Images at the edge: the same bytes give the same tensor bytes as the backend's own preprocessing,
// and every accepted image form reaches the model.
import { ApiError, decodeBase64, Explanation, explanationId, ModelManifest, tensor } from '@protopool/shared';
import { describe, expect, inject, it } from 'vitest';
import { decodeToInput } from '../../edge/src/image';
import { auth } from './env';
import { worker } from './worker';

const fixtures = inject('preprocessing');
const bytes = (b64: string) => decodeBase64(b64)!;

async function manifest() {
  return ModelManifest.parse(await (await worker.fetch('http://edge/v1/model')).json());
}

describe('edge preprocessing equals the backend’s, bit for bit', () => {
  it.each(Object.keys(fixtures))('%s', async (kind) => {
    const m = await manifest();
    const edge = await decodeToInput(bytes(fixtures[kind]!.image), m.input);
    const backend = bytes(fixtures[kind]!.tensor);
    expect(edge.length).toBe(m.input.height * m.input.width * m.input.channels);
    expect(new Uint8Array(edge.buffer, edge.byteOffset, edge.byteLength)).toEqual(backend);
  });
});

describe('image requests', () => {
  const image = bytes(fixtures['image/png rgb']!.image);
  const backendTensor = bytes(fixtures['image/png rgb']!.tensor);

  it('classifies a raw PNG body, addressed by the backend-side tensor', async () => {
    const m = await manifest();
    const res = await worker.fetch('http://edge/v1/classify', {
      method: 'POST',
      body: image,
      headers: { ...auth(), 'content-type': 'image/png' },
    });
    expect(res.status).toBe(200);
    const e = Explanation.parse(await res.json());
    const t = tensor(
      'float32',
      [1, m.input.height, m.input.width, m.input.channels],
      new Float32Array(backendTensor.buffer),
    );
    expect(e.id).toBe(await explanationId(m.version, t));
  });

  it('accepts the same image as multipart and as JSON base64, with the same id', async () => {
    const form = new FormData();
    form.append('image', new Blob([image], { type: 'image/png' }), 'x.png');
    const multipart = Explanation.parse(
      await (
        await worker.fetch('http://edge/v1/classify', { method: 'POST', body: form, headers: auth() })
      ).json(),
    );
    const json = Explanation.parse(
      await (
        await worker.fetch('http://edge/v1/classify', {
          method: 'POST',
          headers: { ...auth(), 'content-type': 'application/json' },
          body: JSON.stringify({ image: { mediaType: 'image/png', data: fixtures['image/png rgb']!.image } }),
        })
      ).json(),
    );
    expect(json.id).toBe(multipart.id);
  });

  it('answers a corrupt image with 400 naming the problem, and a GIF with 415', async () => {
    const corrupt = await worker.fetch('http://edge/v1/classify', {
      method: 'POST',
      body: image.subarray(0, 40),
      headers: { ...auth(), 'content-type': 'image/png' },
    });
    expect(corrupt.status).toBe(400);
    expect(ApiError.parse(await corrupt.json()).error.message).toMatch(
      /cannot read the image\/png image: corrupt PNG/,
    );
    const gif = await worker.fetch('http://edge/v1/classify', {
      method: 'POST',
      body: new Uint8Array([0x47, 0x49, 0x46]),
      headers: { ...auth(), 'content-type': 'image/gif' },
    });
    expect(gif.status).toBe(415);
  });
});
