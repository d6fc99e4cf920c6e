// The Open Inference Protocol (KServe v2) routes, checked against the protocol's own words, on a real model.
//
// Sections cited: "Predict Protocol - Version 2" (kserve/kserve docs/predict-api/v2/required_api.md, the
// KServe v2 / Triton HTTP/REST text) and "HTTP/REST" of the Open Inference Protocol
// (kserve/open-inference-protocol specification/protocol/inference_rest.md).
// The app is the backend's own (createApp, which mounts the /v2 routes), in process.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Explanation, encodeFrame, explanationId, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../gpu-backend/src/server/app';
import { oneModel } from '../../gpu-backend/src/server/model-catalog';
import { ModelService } from '../../gpu-backend/src/server/model-service';
import type { ModelMetadata } from '../../gpu-backend/src/server/open-inference';
import { ROOT, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

let service: ModelService;
let loaded = true;
let version: string;
const CLASSES = 10;

/** The backend's app as serve.ts makes it (the /v2 routes mounted), unsigned: auth is the process test's. */
function backendApp() {
  return createApp({
    models: oneModel('tiny', () => (loaded ? service : undefined)),
    engine: 'wasm',
    secret: undefined,
    maxBodyBytes: 8 * 1024 * 1024,
    retryAfterSeconds: 1,
    log: () => {},
  });
}
let app: ReturnType<typeof backendApp>;

const image = seededArray(784, 11);
const other = seededArray(784, 12);

function get(path: string) {
  return app.request(path);
}
function post(path: string, body: unknown) {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
const input = (data: unknown[], shape = [1, 28, 28, 1]) => ({ name: 'input', shape, datatype: 'FP32', data });
const infer = (body: unknown) => post('/v2/models/protopool/infer', body);

interface Output {
  name: string;
  shape: number[];
  datatype: string;
  data: (number | string)[];
}
interface InferBody {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: Output[];
}
const output = (body: InferBody, name: string) => body.outputs.find((o) => o.name === name)!;

/** The protocol's error objects are `{"error": $string}` and nothing else: the message. */
async function errorMessage(res: Response): Promise<string> {
  const body = (await res.json()) as Record<string, unknown>;
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toEqual(expect.stringMatching(/\S/));
  return body.error as string;
}

/** What /invocations answers for the same image and query: the explanation output must be exactly this. */
async function invocation(data: Float32Array, query = '') {
  const res = await app.request(`/invocations${query}`, {
    method: 'POST',
    headers: { 'content-type': TENSOR_MEDIA_TYPE },
    body: encodeFrame(tensor('float32', [1, 28, 28, 1], data)),
  });
  expect(res.status).toBe(200);
  return Explanation.parse(await res.json());
}

beforeAll(async () => {
  const dir = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-oip-')));
  service = await ModelService.load(dir, { maxBatch: 8, maxWaitMs: 0, maxQueue: 64 });
  version = service.manifest.version;
  app = backendApp();
});

afterAll(() => service?.dispose());

describe('Health (required_api.md "Health"; inference_rest.md "Server Live", "Server Ready", "Model Ready")', () => {
  it('server live: 200 while the process answers, even before the model is loaded', async () => {
    for (const state of [true, false]) {
      loaded = state;
      const res = await get('/v2/health/live');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ live: true });
    }
    loaded = true;
  });

  it('server ready: 200 once the model is loaded, a 4xx ("indicates false") while it loads', async () => {
    expect((await get('/v2/health/ready')).status).toBe(200);
    loaded = false;
    const res = await get('/v2/health/ready');
    loaded = true;
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });

  it('model ready: {"name", "ready"} with 200 when ready, a 4xx while loading, an error for another model', async () => {
    const res = await get('/v2/models/protopool/ready');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'protopool', ready: true });
    expect((await get(`/v2/models/protopool/versions/${version}/ready`)).status).toBe(200);
    loaded = false;
    const loading = await get('/v2/models/protopool/ready');
    loaded = true;
    expect(loading.status).toBeGreaterThanOrEqual(400);
    expect(loading.status).toBeLessThan(500);
    expect(await loading.json()).toEqual({ name: 'protopool', ready: false });
    expect((await get('/v2/models/other/ready')).status).toBe(404);
  });
});

describe('Server Metadata (required_api.md "Server Metadata Response JSON Object")', () => {
  it('GET /v2 names the server, its version and its extensions', async () => {
    const res = await get('/v2');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual({ name: expect.any(String), version: expect.any(String), extensions: [] });
  });
});

describe('Model Metadata (required_api.md "Model Metadata Response JSON Object", "Platforms", "Tensor Data Types")', () => {
  it('describes the model: name, its version, a "<project>_<format>" platform, typed and shaped tensors', async () => {
    const res = await get('/v2/models/protopool');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toEqual({
      name: 'protopool',
      versions: [version],
      platform: expect.stringMatching(/^[a-z0-9]+_[a-z0-9]+$/),
      // "Variable-size dimensions are specified as -1": the batch.
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 28, 28, 1] }],
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [-1, CLASSES] },
        { name: 'probabilities', datatype: 'FP32', shape: [-1, CLASSES] },
        { name: 'explanation', datatype: 'BYTES', shape: [-1] },
      ],
    });
  });

  it('answers the same for the listed version, and an error object for an unknown version or model', async () => {
    expect(await (await get(`/v2/models/protopool/versions/${version}`)).json()).toEqual(
      await (await get('/v2/models/protopool')).json(),
    );
    for (const path of ['/v2/models/protopool/versions/1', '/v2/models/resnet', '/v2/models/ProtoPool']) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      // "Model Metadata Response JSON Error Object".
      await errorMessage(res);
    }
  });
});

describe('Inference (required_api.md "Inference Request JSON Object", "Inference Response JSON Object")', () => {
  it('returns every output when none is requested, with the model name and version and the request id', async () => {
    const res = await infer({ id: '42', inputs: [input([...image])] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as InferBody;
    expect(body.model_name).toBe('protopool');
    expect(body.model_version).toBe(version);
    // "if specified this identifier must be returned in the response"
    expect(body.id).toBe('42');
    expect(body.outputs.map((o) => o.name).sort()).toEqual(['explanation', 'logits', 'probabilities']);
    for (const o of body.outputs) {
      // "Response Output": shape and datatype per tensor; "Tensor Data": row-major, flattened here.
      expect(o.data).toHaveLength(o.shape.reduce((a, b) => a * b, 1));
    }
    expect(output(body, 'logits')).toMatchObject({ datatype: 'FP32', shape: [1, CLASSES] });
    expect(output(body, 'probabilities')).toMatchObject({ datatype: 'FP32', shape: [1, CLASSES] });
    expect(output(body, 'explanation')).toMatchObject({ datatype: 'BYTES', shape: [1] });
  });

  it('gives FP32 numbers: logits whose softmax is the probabilities, the argmax the explanation’s prediction', async () => {
    const body = (await (await infer({ inputs: [input([...image])] })).json()) as InferBody;
    expect(body.id).toBeUndefined();
    const logits = output(body, 'logits').data as number[];
    const probs = output(body, 'probabilities').data as number[];
    for (const v of [...logits, ...probs]) expect(Math.fround(v)).toBe(v);
    const max = Math.max(...logits);
    const exp = logits.map((l) => Math.exp(l - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    exp.forEach((e, i) => {
      expect(probs[i]).toBeCloseTo(e / sum, 5);
    });
    const e = Explanation.parse(JSON.parse(output(body, 'explanation').data[0] as string));
    expect(e.prediction.classIndex).toBe(logits.indexOf(max));
    expect(e.prediction.logit).toBe(max);
  });

  it('puts the same explanation in the BYTES output as /invocations gives, content id included', async () => {
    const body = (await (await infer({ inputs: [input([...image])] })).json()) as InferBody;
    const e = JSON.parse(output(body, 'explanation').data[0] as string);
    expect(e).toEqual(await invocation(image));
    expect(e.id).toBe(await explanationId(version, tensor('float32', [1, 28, 28, 1], image)));
  });

  it('takes the classify options as request "parameters" (server-specific parameters, "Parameters")', async () => {
    const body = (await (
      await infer({ parameters: { topK: 5, explain: false }, inputs: [input([...image])] })
    ).json()) as InferBody;
    const e = Explanation.parse(JSON.parse(output(body, 'explanation').data[0] as string));
    expect(e.topK).toHaveLength(5);
    expect(e.classes).toEqual([]);
    expect(e).toEqual(await invocation(image, '?topK=5&explain=false'));
    const all = (await (
      await infer({ parameters: { topK: 4, explainTopK: true }, inputs: [input([...image])] })
    ).json()) as InferBody;
    expect(JSON.parse(output(all, 'explanation').data[0] as string)).toEqual(
      await invocation(image, '?topK=4&explainTopK=true'),
    );
  });

  it('returns only the requested outputs ("outputs": the output tensors requested for this inference)', async () => {
    for (const names of [['explanation'], ['probabilities', 'logits'], ['logits']]) {
      const res = await infer({ inputs: [input([...image])], outputs: names.map((name) => ({ name })) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as InferBody;
      expect(body.outputs.map((o) => o.name).sort()).toEqual([...names].sort());
    }
  });

  it('accepts tensor data nested in its natural shape as well as flattened ("Tensor Data")', async () => {
    const nested = Array.from({ length: 1 }, () =>
      Array.from({ length: 28 }, (_, y) => Array.from({ length: 28 }, (_, x) => [image[y * 28 + x]!])),
    );
    const flat = (await (await infer({ inputs: [input([...image])] })).json()) as InferBody;
    const natural = await infer({ inputs: [input(nested)] });
    expect(natural.status).toBe(200);
    expect(await natural.json()).toEqual(flat);
  });

  it('answers a batch with the full shape of the batch, row b being image b’s answer ("Request Input", "Response Output")', async () => {
    const res = await infer({ inputs: [input([...image, ...other], [2, 28, 28, 1])] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as InferBody;
    const one = async (data: Float32Array) =>
      (await (await infer({ inputs: [input([...data])] })).json()) as InferBody;
    const [a, b] = [await one(image), await one(other)];
    expect(output(body, 'logits').shape).toEqual([2, CLASSES]);
    expect(output(body, 'logits').data).toEqual([...output(a, 'logits').data, ...output(b, 'logits').data]);
    expect(output(body, 'probabilities').data).toEqual([
      ...output(a, 'probabilities').data,
      ...output(b, 'probabilities').data,
    ]);
    expect(output(body, 'explanation')).toEqual({
      name: 'explanation',
      datatype: 'BYTES',
      shape: [2],
      data: [output(a, 'explanation').data[0], output(b, 'explanation').data[0]],
    });
  });
});

describe('Inference errors (required_api.md "Inference Response JSON Error Object"; "All strings … are case-sensitive")', () => {
  const good = [...image];
  it.each([
    ['a body that is not JSON', '{"inputs": [', /not JSON/],
    ['no inputs', { inputs: [] }, /inputs/],
    ['an unknown input name', { inputs: [{ ...input(good), name: 'INPUT' }] }, /unknown input "INPUT"/],
    ['two inputs', { inputs: [input(good), input(good)] }, /expected 1 input/],
    ['another datatype', { inputs: [{ ...input(good), datatype: 'FP64' }] }, /must be FP32, got FP64/],
    ['a shape that is not the model’s', { inputs: [input(good, [1, 28, 28, 3])] }, /\[-1, 28, 28, 1\]/],
    ['data that does not fill the shape', { inputs: [input(good.slice(1))] }, /783/],
    ['a string in FP32 data', { inputs: [input(['0.5', ...good.slice(1)])] }, /element 0/],
    [
      'an unknown output',
      { inputs: [input(good)], outputs: [{ name: 'Logits' }] },
      /unknown output "Logits"/,
    ],
    ['an invalid parameter', { inputs: [input(good)], parameters: { topK: 0 } }, /topK/],
  ])('refuses %s with 400 and {"error": <message>}', async (_name, body, message) => {
    const res = await infer(body);
    expect(res.status).toBe(400);
    expect(await errorMessage(res)).toMatch(message);
  });

  it('answers 404 with an error object for a model it does not serve (names are case-sensitive)', async () => {
    for (const name of ['other', 'ProtoPool']) {
      const res = await post(`/v2/models/${name}/infer`, { inputs: [input(good)] });
      expect(res.status).toBe(404);
      expect(await errorMessage(res)).toMatch(/unknown model/);
    }
  });
});

describe('Several models (#18): each under its own name, "protopool" the default', () => {
  let parts: ModelService;
  let partsLoaded = true;
  let two: ReturnType<typeof createApp>;

  beforeAll(async () => {
    parts = await ModelService.load(join(ROOT, 'models', 'parts'), {
      maxBatch: 8,
      maxWaitMs: 0,
      maxQueue: 64,
    });
    const models = {
      names: ['tiny', 'parts'],
      defaultName: 'tiny',
      service: (n: string) => (n === 'tiny' ? service : n === 'parts' && partsLoaded ? parts : undefined),
    };
    two = createApp({
      models,
      engine: 'wasm',
      secret: undefined,
      maxBodyBytes: 8 * 1024 * 1024,
      retryAfterSeconds: 1,
      log: () => {},
    });
  });

  afterAll(() => parts?.dispose());

  it('answers metadata under each name with that model shape and version; protopool is the default', async () => {
    const meta = async (name: string) =>
      (await (await two.request(`/v2/models/${name}`)).json()) as ModelMetadata;
    const p = await meta('parts');
    expect([p.name, p.versions, p.inputs[0]!.shape, p.outputs[0]!.shape]).toEqual([
      'parts',
      [parts.manifest.version],
      [-1, 64, 64, 3],
      [-1, 15],
    ]);
    const alias = await meta('protopool');
    const tiny = await meta('tiny');
    expect([alias.name, alias.versions, alias.inputs[0]!.shape]).toEqual([
      'protopool',
      [version],
      [-1, 28, 28, 1],
    ]);
    expect({ ...tiny, name: 'protopool' }).toEqual(alias);
  });

  it('infers on the model named in the path', async () => {
    const data = Array.from(seededArray(64 * 64 * 3, 31));
    const res = await two.request('/v2/models/parts/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [input(data, [1, 64, 64, 3])], outputs: [{ name: 'logits' }] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as InferBody;
    expect([body.model_name, body.model_version]).toEqual(['parts', parts.manifest.version]);
    expect(output(body, 'logits').shape).toEqual([1, 15]);
    // The tiny model's input is refused by parts, naming the shape parts wants.
    const wrong = await two.request('/v2/models/parts/infer', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [input(Array.from(image))] }),
    });
    expect(wrong.status).toBe(400);
    expect(await errorMessage(wrong)).toMatch(/\[-1, 64, 64, 3\]/);
  });

  it('is ready only once every model is; each model reports its own readiness', async () => {
    partsLoaded = false;
    try {
      expect((await two.request('/v2/health/ready')).status).toBe(400);
      expect((await two.request('/v2/models/tiny/ready')).status).toBe(200);
      const res = await two.request('/v2/models/parts/ready');
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ name: 'parts', ready: false });
    } finally {
      partsLoaded = true;
    }
    expect((await two.request('/v2/health/ready')).status).toBe(200);
  });

  it('names every model it serves in the 404 for one it does not', async () => {
    const res = await two.request('/v2/models/fashion-mnist');
    expect(res.status).toBe(404);
    expect(await errorMessage(res)).toBe(
      'unknown model "fashion-mnist"; this server has "protopool", "tiny", "parts"',
    );
  });
});
