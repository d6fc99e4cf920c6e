// The classify protocol both tiers speak, as one suite: the backend process (Node) and the Worker (workerd)
// each run it, so a body, a query or a refusal means the same thing, in the same words, on either side.
import {
  ApiError,
  Explanation,
  encodeBase64,
  encodeFrame,
  encodeJson,
  explanationId,
  type ModelList,
  type ModelManifest,
  TENSOR_MEDIA_TYPE,
  tensor,
  type WireTensor,
} from '@protopool/shared';
import UPNG from 'upng-js';
import { beforeAll, describe, expect, it } from 'vitest';

export interface ClassifyCall {
  /** The content-type header; absent sends none. */
  type?: string;
  body: Uint8Array | string;
  /** Query string without "?", e.g. "topK=5&explain=0". */
  query?: string;
}

export interface ProtocolTarget {
  /** The default model's manifest. */
  manifest(): Promise<ModelManifest>;
  /** What GET /v1/models lists (the suites serve at least two models: the tiny one, the default, first). */
  models(): Promise<ModelList>;
  /** One classify request, authorised as the tier wants (an API key, an HMAC signature). */
  classify(call: ClassifyCall): Promise<Response>;
}

const bytes = (s: string) => new TextEncoder().encode(s);

/** A grey PNG of the model's size whose pixel (y, x) is (7·y + 3·x) mod 256: no resize, no colour maths. */
function greyPng(height: number, width: number): { png: Uint8Array; pixels: Uint8Array } {
  const pixels = Uint8Array.from(
    { length: height * width },
    (_, i) => (7 * Math.floor(i / width) + 3 * (i % width)) % 256,
  );
  const rgba = new Uint8Array(4 * pixels.length);
  for (const [i, v] of pixels.entries()) rgba.set([v, v, v, 255], 4 * i);
  // Lossless (0 colours = no palette); upng stores grey as grey, and R = G = B stays v through luma anyway.
  const png = new Uint8Array(UPNG.encode([rgba.buffer], width, height, 0));
  return { png, pixels };
}

/** The model input that PNG must become, by the manifest's formula written out: (v/255 − mean)/std. */
function normalisedByHand(pixels: Uint8Array, m: ModelManifest): WireTensor {
  const { height, width, mean, std } = m.input;
  const data = Float32Array.from(pixels, (v) => (v / 255 - mean[0]!) / std[0]!);
  return tensor('float32', [1, height, width, 1], data);
}

function multipart(file: { type: string; bytes: Uint8Array } | null, field = 'image') {
  const boundary = 'contract-boundary-7d1f';
  const head = bytes(
    `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="x"\r\nContent-Type: ${file?.type ?? 'text/plain'}\r\n\r\n`,
  );
  const content = file?.bytes ?? bytes('not a file');
  const tail = bytes(`\r\n--${boundary}--\r\n`);
  const body = new Uint8Array(head.length + content.length + tail.length);
  body.set(head);
  body.set(content, head.length);
  body.set(tail, head.length + content.length);
  return { type: `multipart/form-data; boundary=${boundary}`, body };
}

async function refusal(res: Response) {
  return { status: res.status, ...ApiError.parse(await res.json()).error };
}

export function protocolContract(name: string, target: () => ProtocolTarget) {
  describe(`classify protocol: ${name}`, () => {
    let m: ModelManifest;
    let image: { png: Uint8Array; pixels: Uint8Array };
    let expectedId: string;
    let input: WireTensor;

    beforeAll(async () => {
      m = await target().manifest();
      // The contract's arithmetic assumes a grey model (the suites' tiny Fashion-MNIST model).
      expect(m.input.channels).toBe(1);
      image = greyPng(m.input.height, m.input.width);
      input = normalisedByHand(image.pixels, m);
      expectedId = await explanationId(m.version, input);
    });

    const ok = async (call: ClassifyCall) => {
      const res = await target().classify(call);
      expect(res.status, await res.clone().text()).toBe(200);
      return Explanation.parse(await res.json());
    };

    it('reads every accepted form of one input to the same tensor: the explanation id is sha256(version ‖ that tensor)', async () => {
      const forms: ClassifyCall[] = [
        { type: TENSOR_MEDIA_TYPE, body: encodeFrame(input) },
        { type: 'application/json', body: JSON.stringify({ tensor: encodeJson(input) }) },
        { type: 'image/png', body: image.png },
        { type: 'image/png; charset=binary', body: image.png },
        {
          type: 'application/json',
          body: JSON.stringify({ image: { mediaType: 'image/png', data: encodeBase64(image.png) } }),
        },
        multipart({ type: 'image/png', bytes: image.png }),
      ];
      for (const form of forms) {
        const e = await ok(form);
        expect(e.id, form.type).toBe(expectedId);
        expect(e.modelVersion).toBe(m.version);
      }
    });

    it('answers the defaults when no option is given: top 3, the predicted class explained', async () => {
      const e = await ok({ type: TENSOR_MEDIA_TYPE, body: encodeFrame(input) });
      expect(e.topK).toHaveLength(3);
      expect(e.classes.map((c) => c.classIndex)).toEqual([e.prediction.classIndex]);
    });

    it("takes a JSON body's options, and the query's over them (true/false and 1/0 alike)", async () => {
      const body = (options: object) => JSON.stringify({ tensor: encodeJson(input), options });
      const own = await ok({ type: 'application/json', body: body({ topK: 4, explainTopK: true }) });
      expect(own.topK).toHaveLength(4);
      expect(own.classes.map((c) => c.classIndex)).toEqual(own.topK.map((c) => c.classIndex));
      const overridden = await ok({
        type: 'application/json',
        body: body({ topK: 4, explain: true }),
        query: 'topK=2&explain=0',
      });
      expect([overridden.topK.length, overridden.classes.length]).toEqual([2, 0]);
      const spelled = await ok({
        type: TENSOR_MEDIA_TYPE,
        body: encodeFrame(input),
        query: 'explain=false&explainTopK=1',
      });
      expect(spelled.classes).toEqual([]);
    });

    it('answers with the model a request names, each by its own input and version, and the default for none', async () => {
      const list = await target().models();
      expect(list.models.length).toBeGreaterThanOrEqual(2);
      expect(list.models.find((s) => s.name === list.default)?.version).toBe(m.version);
      for (const s of list.models) {
        const { height, width, channels } = s.input;
        const zeros = tensor(
          'float32',
          [1, height, width, channels],
          new Float32Array(height * width * channels),
        );
        const e = await ok({
          type: TENSOR_MEDIA_TYPE,
          body: encodeFrame(zeros),
          query: `model=${s.name}&explain=0`,
        });
        expect(e.modelVersion, s.name).toBe(s.version);
        expect(e.id, s.name).toBe(await explanationId(s.version, zeros));
        expect(
          e.topK.map((t) => t.label).every((l) => s.classes.includes(l)),
          s.name,
        ).toBe(true);
      }
      // No name: the default model, even beside an option.
      const plain = await ok({ type: TENSOR_MEDIA_TYPE, body: encodeFrame(input), query: 'topK=2' });
      expect([plain.modelVersion, plain.id, plain.topK.length]).toEqual([m.version, expectedId, 2]);
    });

    it('refuses a malformed model name with 400 naming the parameter, and an unknown one with 404 listing the served', async () => {
      const call = (query: string) =>
        target().classify({ type: TENSOR_MEDIA_TYPE, body: encodeFrame(input), query });
      expect(await refusal(await call('model=Tiny%2F..'))).toEqual({
        status: 400,
        code: 'bad_request',
        message: 'Invalid query: model: model names are 1–48 lowercase letters, digits or inner hyphens',
        details: expect.anything(),
      });
      const served = (await target().models()).models.map((s) => s.name).join(', ');
      expect(await refusal(await call('model=cars'))).toMatchObject({
        status: 404,
        code: 'not_found',
        message: `no model "cars" here; this deployment serves: ${served} (GET /v1/models)`,
      });
    });

    it.each([
      ['topK=0', /^Invalid query: topK: Too small: expected number to be >=1$/],
      ['topK=21', /^Invalid query: topK: Too big: expected number to be <=20$/],
      ['explain=yes', /^Invalid query: explain: Invalid option: expected one of /],
    ])('refuses the query %s with 400 naming the parameter', async (query, message) => {
      const r = await refusal(
        await target().classify({ type: TENSOR_MEDIA_TYPE, body: encodeFrame(input), query }),
      );
      expect(r).toMatchObject({ status: 400, code: 'bad_request' });
      expect(r.message).toMatch(message);
    });

    it.each<[string, number, string, () => ClassifyCall, RegExp]>([
      [
        'no content type',
        415,
        'unsupported_media_type',
        () => ({ body: encodeFrame(input) }),
        /^content-type must be image\/jpeg, image\/png, multipart\/form-data, application\/json, application\/x-protopool-tensor; got "none"$/,
      ],
      [
        'text/plain',
        415,
        'unsupported_media_type',
        () => ({ type: 'text/plain', body: 'hello' }),
        /; got "text\/plain"$/,
      ],
      [
        'JSON that does not parse',
        400,
        'bad_request',
        () => ({ type: 'application/json', body: '{"tensor":' }),
        /^body is not valid JSON$/,
      ],
      [
        'JSON with both an image and a tensor',
        400,
        'bad_request',
        () => ({
          type: 'application/json',
          body: JSON.stringify({
            tensor: encodeJson(input),
            image: { mediaType: 'image/png', data: encodeBase64(image.png) },
          }),
        }),
        /^Invalid request body: \(root\): give exactly one of "image" or "tensor"$/,
      ],
      [
        'JSON with an unknown field',
        400,
        'bad_request',
        () => ({ type: 'application/json', body: JSON.stringify({ tensor: encodeJson(input), topK: 3 }) }),
        /^Invalid request body: \(root\): Unrecognized key: "topK"$/,
      ],
      [
        'JSON options out of range',
        400,
        'bad_request',
        () => ({
          type: 'application/json',
          body: JSON.stringify({ tensor: encodeJson(input), options: { topK: 99 } }),
        }),
        /^Invalid request body: options\.topK: Too big: expected number to be <=20$/,
      ],
      [
        'base64 that is not canonical',
        400,
        'bad_request',
        () => ({
          type: 'application/json',
          body: JSON.stringify({ image: { mediaType: 'image/png', data: 'iVBO*' } }),
        }),
        /^Invalid request body: image\.data: not canonical base64$/,
      ],
      [
        'a tensor of the wrong shape',
        400,
        'bad_request',
        () => ({
          type: TENSOR_MEDIA_TYPE,
          body: encodeFrame(tensor('float32', [1, 3, 3, 1], new Float32Array(9))),
        }),
        /^tensor shape must be \[\d+, \d+, 1\] or \[1, \d+, \d+, 1\] \(the model's normalised input\), got \[1, 3, 3, 1\]$/,
      ],
      [
        'a PNG cut short',
        400,
        'bad_request',
        () => ({ type: 'image/png', body: image.png.slice(0, 40) }),
        /^cannot read the image\/png image: /,
      ],
      [
        'a JPEG that is text',
        400,
        'bad_request',
        () => ({ type: 'image/jpeg', body: 'not an image at all' }),
        /^cannot read the image\/jpeg image: /,
      ],
      [
        'multipart without an "image" field',
        400,
        'bad_request',
        () => multipart({ type: 'image/png', bytes: image.png }, 'file'),
        /^multipart body needs a file field named "image"$/,
      ],
      [
        'multipart with a text file',
        415,
        'unsupported_media_type',
        () => multipart(null),
        /^image must be image\/jpeg or image\/png, got "text\/plain"$/,
      ],
    ])('refuses %s with %i %s, in the same words', async (_, status, code, call, message) => {
      const r = await refusal(await target().classify(call()));
      expect(r).toMatchObject({ status, code });
      expect(r.message).toMatch(message);
    });
  });
}
