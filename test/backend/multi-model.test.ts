// Several models in one backend (#18), as a real process: `serve --model parts=… --model fashion-mnist=…`,
// the model list, ?model= on every route that reads a model, the same through SageMaker's CustomAttributes,
// the Open Inference Protocol's per-name routes, metrics and log lines per model, and SIGHUP switching only
// the model whose directory changed.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rename, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiError,
  CUSTOM_ATTRIBUTES_HEADER,
  Explanation,
  encodeFrame,
  explanationId,
  GlobalExplanation,
  type Invocation,
  invocationAttributes,
  ModelList,
  ModelManifest,
  signAttributes,
  signRequest,
  TENSOR_MEDIA_TYPE,
  tensor,
} from '@protopool/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nameOfDirectory } from '../../gpu-backend/src/cli/serve-models';
import { readPrototypeImages } from '../../gpu-backend/src/io/model-files';
import { type BackendProcess, CLI, ROOT, startBackend, trainTinyModel } from '../helpers/backend-process';
import { png } from '../helpers/image-files';
import { seededArray } from '../helpers/random';

const SECRET = 'test-secret-not-for-production';
const PARTS = join(ROOT, 'models', 'parts');
const FASHION = join(ROOT, 'models', 'fashion-mnist');

async function manifestOf(dir: string): Promise<ModelManifest> {
  return ModelManifest.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
}

/** A signed request to `backend`, as the edge sends them. */
async function call(
  backend: BackendProcess,
  path: string,
  init: { body?: Uint8Array; type?: string; headers?: Record<string, string>; signed?: boolean } = {},
) {
  const method = init.body === undefined ? 'GET' : 'POST';
  const body = init.body ?? new Uint8Array();
  const headers: Record<string, string> = {
    ...init.headers,
    ...(init.type && { 'content-type': init.type }),
  };
  if (init.signed !== false) Object.assign(headers, await signRequest(SECRET, { method, path, body }));
  return fetch(backend.url + path, { method, headers, body: init.body });
}

/** POST /invocations as SageMaker forwards it: everything but the body in signed CustomAttributes. */
async function invoke(
  backend: BackendProcess,
  invocation: Invocation,
  body = new Uint8Array(),
  type?: string,
) {
  const attributes = await signAttributes(SECRET, invocationAttributes(invocation), body);
  return fetch(`${backend.url}/invocations`, {
    method: 'POST',
    headers: { [CUSTOM_ATTRIBUTES_HEADER]: attributes, ...(type && { 'content-type': type }) },
    body,
  });
}

function logEvents(backend: BackendProcess): Record<string, unknown>[] {
  return backend.logs.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

// One picture both models can read: each resizes it to its own input (64×64×3 and 28×28×1).
const picture = new Uint8Array(
  png(
    'rgb',
    40,
    40,
    Array.from(seededArray(40 * 40 * 3, 21, 0, 255), (v) => Math.round(v)),
  ),
);

describe('a backend serving parts and fashion-mnist, fashion-mnist the default', () => {
  let backend: BackendProcess;
  let parts: ModelManifest;
  let fashion: ModelManifest;

  beforeAll(async () => {
    parts = await manifestOf(PARTS);
    fashion = await manifestOf(FASHION);
    // parts comes first: the default is fashion-mnist only because --default-model says so.
    backend = await startBackend(
      [
        '--model',
        `parts=${PARTS}`,
        '--model',
        `fashion-mnist=${FASHION}`,
        '--default-model',
        'fashion-mnist',
      ],
      { PROTOPOOL_HMAC_SECRET: SECRET },
    );
  });

  afterAll(async () => {
    await backend?.stop();
  });

  it('is ready (/ping 200) with every model loaded, the default version in `model` and each in `models`', async () => {
    const res = await fetch(`${backend.url}/ping`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; model: string; models: Record<string, string> };
    expect(body.status).toBe('ok');
    expect(body.model).toBe(fashion.version);
    expect(body.models).toEqual({ parts: parts.version, 'fashion-mnist': fashion.version });
    const ready = logEvents(backend).filter((e) => e.event === 'models_ready');
    expect(ready).toEqual([expect.objectContaining({ default: 'fashion-mnist' })]);
    const loaded = logEvents(backend).filter((e) => e.event === 'model_loaded');
    expect(loaded.map((e) => e.name).sort()).toEqual(['fashion-mnist', 'parts']);
  });

  it('GET /v1/models lists both, in --model order, with the default and what each manifest says', async () => {
    const res = await call(backend, '/v1/models');
    expect(res.status).toBe(200);
    const list = ModelList.parse(await res.json());
    expect(list.default).toBe('fashion-mnist');
    expect(list.models.map((m) => [m.name, m.version, m.classes.length])).toEqual([
      ['parts', parts.version, 15],
      ['fashion-mnist', fashion.version, 10],
    ]);
    expect(list.models.map((m) => [m.input.height, m.input.width, m.input.channels])).toEqual([
      [64, 64, 3],
      [28, 28, 1],
    ]);
    expect(list.models.map((m) => m.prototypes)).toEqual([
      parts.prototypes.length,
      fashion.prototypes.length,
    ]);
    expect(list.models.every((m) => m.novelty)).toBe(true);
  });

  it('signs GET /v1/models like every /v1 route', async () => {
    const res = await call(backend, '/v1/models', { signed: false });
    expect(res.status).toBe(401);
  });

  it('classifies one picture under each model: each answers with its own version, classes and id', async () => {
    const answers = new Map<string, Explanation>();
    for (const name of ['parts', 'fashion-mnist']) {
      const res = await call(backend, `/v1/explain?model=${name}&topK=15`, {
        body: picture,
        type: 'image/png',
      });
      expect(res.status).toBe(200);
      answers.set(name, Explanation.parse(await res.json()));
    }
    const p = answers.get('parts')!;
    const f = answers.get('fashion-mnist')!;
    expect(p.modelVersion).toBe(parts.version);
    expect(f.modelVersion).toBe(fashion.version);
    // Every class each model knows, and only those: the top 15 of parts is all of its classes, fashion has 10.
    expect(p.topK.map((s) => s.label).sort()).toEqual([...parts.classes].sort());
    expect(f.topK.map((s) => s.label).sort()).toEqual([...fashion.classes].sort());
    expect(p.id).not.toBe(f.id);
  });

  it('answers with the default model when the request names none, on the tensor route and its id', async () => {
    const data = seededArray(28 * 28, 3);
    const frame = encodeFrame(tensor('float32', [1, 28, 28, 1], data));
    const plain = await call(backend, '/invocations', { body: frame, type: TENSOR_MEDIA_TYPE });
    const named = await call(backend, '/invocations?model=fashion-mnist', {
      body: frame,
      type: TENSOR_MEDIA_TYPE,
    });
    expect([plain.status, named.status]).toEqual([200, 200]);
    const e = Explanation.parse(await plain.json());
    expect(e.modelVersion).toBe(fashion.version);
    expect(e.id).toBe(await explanationId(fashion.version, tensor('float32', [1, 28, 28, 1], data)));
    expect(Explanation.parse(await named.json())).toEqual(e);
    // The same tensor is the wrong shape for parts: the named model's input is what is checked.
    const wrong = await call(backend, '/invocations?model=parts', { body: frame, type: TENSOR_MEDIA_TYPE });
    expect(wrong.status).toBe(400);
    expect(ApiError.parse(await wrong.json()).error.message).toMatch(/64, 64, 3/);
  });

  it('logs each request with the model it used: the one it named, or the default', async () => {
    const before = logEvents(backend).length;
    await call(backend, '/v1/model?model=parts');
    await call(backend, '/v1/model');
    const lines = logEvents(backend)
      .slice(before)
      .filter((e) => e.event === 'request' && e.route === '/v1/model');
    expect(lines.map((e) => e.model)).toEqual(['parts', 'fashion-mnist']);
  });

  it.each([
    ['GET', '/v1/model'],
    ['GET', '/v1/prototypes'],
    ['GET', '/v1/prototypes/0'],
    ['GET', '/v1/prototypes/0/image'],
    ['POST', '/invocations'],
    ['POST', '/v1/explain'],
  ])(
    '%s %s?model= : 404 naming the served models for an unknown name, 400 for a malformed one',
    async (method, path) => {
      const body = method === 'POST' ? picture : undefined;
      const unknown = await call(backend, `${path}?model=cub`, { body, type: 'image/png' });
      expect(unknown.status).toBe(404);
      expect(ApiError.parse(await unknown.json()).error).toMatchObject({
        code: 'not_found',
        message: expect.stringContaining('serves: parts, fashion-mnist'),
      });
      const bad = await call(backend, `${path}?model=Parts_2`, { body, type: 'image/png' });
      expect(bad.status).toBe(400);
      expect(ApiError.parse(await bad.json()).error.message).toBe(
        'Invalid query: model: model names are 1–48 lowercase letters, digits or inner hyphens',
      );
    },
  );

  it('serves each model manifest, prototypes and prototype pictures under its name', async () => {
    const manifest = async (q: string) =>
      ModelManifest.parse(await (await call(backend, `/v1/model${q}`)).json());
    expect((await manifest('?model=parts')).version).toBe(parts.version);
    expect((await manifest('')).version).toBe(fashion.version);
    const global = GlobalExplanation.parse(await (await call(backend, '/v1/prototypes?model=parts')).json());
    expect(global.prototypes.map((p) => p.id)).toEqual(parts.prototypes.map((p) => p.id));
    // Prototype 2 is one of parts' but was dropped from fashion-mnist (unused after training).
    expect(parts.prototypes.some((p) => p.id === 2)).toBe(true);
    expect(fashion.prototypes.some((p) => p.id === 2)).toBe(false);
    expect((await call(backend, '/v1/prototypes/2?model=parts')).status).toBe(200);
    expect((await call(backend, '/v1/prototypes/2?model=fashion-mnist')).status).toBe(404);
    // Prototype 0 is in both: each route answers its own model's training patch, byte for byte.
    const onDisk = {
      parts: (await readPrototypeImages(PARTS, parts)).get(0)!,
      fashion: (await readPrototypeImages(FASHION, fashion)).get(0)!,
    };
    const image = async (q: string) =>
      new Uint8Array(await (await call(backend, `/v1/prototypes/0/image${q}`)).arrayBuffer());
    expect(Buffer.from(await image('?model=parts')).equals(Buffer.from(onDisk.parts))).toBe(true);
    expect(Buffer.from(await image('')).equals(Buffer.from(onDisk.fashion))).toBe(true);
    expect(Buffer.from(onDisk.parts).equals(Buffer.from(onDisk.fashion))).toBe(false);
  });

  describe('through SageMaker (signed CustomAttributes)', () => {
    it('route=models lists both models', async () => {
      const res = await invoke(backend, { route: 'models' });
      expect(res.status).toBe(200);
      const list = ModelList.parse(await res.json());
      expect(list.default).toBe('fashion-mnist');
      expect(list.models.map((m) => m.version)).toEqual([parts.version, fashion.version]);
    });

    it('route=manifest takes model=, else the default', async () => {
      const named = await invoke(backend, { route: 'manifest', model: 'parts' });
      expect(ModelManifest.parse(await named.json()).version).toBe(parts.version);
      const plain = await invoke(backend, { route: 'manifest' });
      expect(ModelManifest.parse(await plain.json()).version).toBe(fashion.version);
    });

    it('route=prototype-image takes model=', async () => {
      const res = await invoke(backend, { route: 'prototype-image', id: '2', model: 'parts' });
      expect(res.status).toBe(200);
      const want = (await readPrototypeImages(PARTS, parts)).get(2)!;
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(want))).toBe(true);
      const absent = await invoke(backend, { route: 'prototype-image', id: '2', model: 'fashion-mnist' });
      expect(absent.status).toBe(404);
    });

    it("classify's attributes take model= beside the options", async () => {
      const res = await invoke(
        backend,
        { route: 'classify', query: { model: 'parts', topK: '2' } },
        picture,
        'image/png',
      );
      expect(res.status).toBe(200);
      const e = Explanation.parse(await res.json());
      expect(e.modelVersion).toBe(parts.version);
      expect(e.topK).toHaveLength(2);
    });

    it('an unknown or malformed model= is refused as on the query', async () => {
      const unknown = await invoke(backend, { route: 'manifest', model: 'cub' });
      expect(unknown.status).toBe(404);
      const bad = await invoke(backend, { route: 'prototype-image', id: '0', model: '-x' });
      expect(bad.status).toBe(400);
      expect(ApiError.parse(await bad.json()).error.message).toMatch(/^Invalid query: model: /);
    });
  });

  describe('Open Inference Protocol', () => {
    const v2 = (path: string, body?: unknown) =>
      fetch(`${backend.url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    it('has /v2/models/<name> per served model, and protopool as the default model', async () => {
      const meta = async (name: string) =>
        (await (await v2(`/v2/models/${name}`)).json()) as {
          name: string;
          versions: string[];
          inputs: { shape: number[] }[];
        };
      const p = await meta('parts');
      expect([p.name, p.versions, p.inputs[0]!.shape]).toEqual(['parts', [parts.version], [-1, 64, 64, 3]]);
      const f = await meta('fashion-mnist');
      expect([f.name, f.versions, f.inputs[0]!.shape]).toEqual([
        'fashion-mnist',
        [fashion.version],
        [-1, 28, 28, 1],
      ]);
      const alias = await meta('protopool');
      expect([alias.name, alias.versions]).toEqual(['protopool', [fashion.version]]);
      expect((await v2('/v2/models/parts/ready')).status).toBe(200);
      expect((await v2(`/v2/models/parts/versions/${fashion.version}`)).status).toBe(404);
      const unknown = await v2('/v2/models/cub');
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: string }).error).toBe(
        'unknown model "cub"; this server has "protopool", "parts", "fashion-mnist"',
      );
    });

    it('infers on the named model, signed like /invocations', async () => {
      const body = {
        inputs: [
          {
            name: 'input',
            shape: [1, 64, 64, 3],
            datatype: 'FP32',
            data: Array.from(seededArray(64 * 64 * 3, 4)),
          },
        ],
        outputs: [{ name: 'probabilities' }],
      };
      const bytes = new TextEncoder().encode(JSON.stringify(body));
      const path = '/v2/models/parts/infer';
      const res = await fetch(backend.url + path, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(await signRequest(SECRET, { method: 'POST', path, body: bytes })),
        },
        body: bytes,
      });
      expect(res.status).toBe(200);
      const out = (await res.json()) as {
        model_name: string;
        model_version: string;
        outputs: { shape: number[]; data: number[] }[];
      };
      expect([out.model_name, out.model_version]).toEqual(['parts', parts.version]);
      const line = logEvents(backend).findLast(
        (e) => e.event === 'request' && e.route === '/v2/models/:name/infer',
      );
      expect(line).toMatchObject({ model: 'parts', status: 200 });
      expect(out.outputs[0]!.shape).toEqual([1, 15]);
      expect(out.outputs[0]!.data.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    });
  });

  it('exposes one protopool_model_info series per served model, labelled with its name', async () => {
    const text = await (await fetch(`${backend.url}/metrics`)).text();
    const series = text.split('\n').filter((l) => l.startsWith('protopool_model_info{'));
    expect(series).toHaveLength(2);
    expect(series.some((l) => l.includes('name="parts"') && l.includes(`version="${parts.version}"`))).toBe(
      true,
    );
    expect(
      series.some((l) => l.includes('name="fashion-mnist"') && l.includes(`version="${fashion.version}"`)),
    ).toBe(true);
  });
});

describe('SIGHUP with two models', () => {
  let backend: BackendProcess;
  let link: string;
  let tinyB: string;
  let versions: { a: string; b: string; fashion: string };

  beforeAll(async () => {
    const work = await mkdtemp(join(tmpdir(), 'pp-multi-switch-'));
    const tinyA = await trainTinyModel(join(work, 'a'), 5);
    tinyB = await trainTinyModel(join(work, 'b'), 6);
    link = join(work, 'current');
    await symlink(tinyA, link);
    versions = {
      a: (await manifestOf(tinyA)).version,
      b: (await manifestOf(tinyB)).version,
      fashion: (await manifestOf(FASHION)).version,
    };
    backend = await startBackend(['--model', `tiny=${link}`, '--model', FASHION], {
      PROTOPOOL_HMAC_SECRET: SECRET,
    });
  });

  afterAll(async () => {
    await backend?.stop();
  });

  it('switches only the model whose directory changed; the other keeps serving the same load', async () => {
    const ping = async () =>
      ((await (await fetch(`${backend.url}/ping`)).json()) as { models: Record<string, string> }).models;
    expect(await ping()).toEqual({ tiny: versions.a, 'fashion-mnist': versions.fashion });
    const before = logEvents(backend).length;
    await symlink(tinyB, `${link}.next`);
    await rename(`${link}.next`, link);
    backend.child.kill('SIGHUP');
    const deadline = Date.now() + 60_000;
    const since = () => logEvents(backend).slice(before);
    while (
      !since().some((e) => e.event === 'model_switch') ||
      !since().some((e) => e.event === 'model_unchanged')
    ) {
      if (Date.now() > deadline) throw new Error(`no switch in the log:\n${backend.logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(since().filter((e) => e.event === 'model_switch')).toEqual([
      expect.objectContaining({ name: 'tiny', from: versions.a, to: versions.b }),
    ]);
    expect(since().filter((e) => e.event === 'model_unchanged')).toEqual([
      expect.objectContaining({ name: 'fashion-mnist', version: versions.fashion }),
    ]);
    expect(
      since()
        .filter((e) => e.event === 'model_loading')
        .map((e) => e.name),
    ).toEqual(['tiny']);
    expect(await ping()).toEqual({ tiny: versions.b, 'fashion-mnist': versions.fashion });
    const frame = encodeFrame(tensor('float32', [1, 28, 28, 1], seededArray(784, 9)));
    const e = Explanation.parse(
      await (await call(backend, '/invocations?model=tiny', { body: frame, type: TENSOR_MEDIA_TYPE })).json(),
    );
    expect(e.modelVersion).toBe(versions.b);
  });
});

describe('serve --model: names and defaults', () => {
  function serve(args: string[]) {
    return spawnSync(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
      env: { ...process.env, PROTOPOOL_HMAC_SECRET: SECRET, PROTOPOOL_ENGINE: 'wasm' },
      encoding: 'utf8',
      timeout: 60_000,
    });
  }

  it.each([
    [
      'a name given twice',
      ['--model', FASHION, '--model', `fashion-mnist=${PARTS}`],
      `two models are named "fashion-mnist" (${FASHION}, ${PARTS})`,
    ],
    [
      'a malformed name',
      ['--model', `Fashion=${FASHION}`],
      `--model Fashion=${FASHION}: "Fashion" is not a model name (model names are 1–48 lowercase letters, digits or inner hyphens)`,
    ],
    [
      'a --default-model not served',
      ['--model', PARTS, '--default-model', 'fashion-mnist'],
      '--default-model fashion-mnist: no model of that name is served (parts)',
    ],
    [
      'a directory without a model',
      ['--model', `x=${tmpdir()}`],
      `--model ${tmpdir()}: no manifest.json there`,
    ],
  ])('exits 2 before loading anything for %s, naming the flag and value', (_, args, message) => {
    const r = serve(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).not.toContain('listening');
  });

  it('serves an unnamed directory under its own name in model-name form, as any training output is named', async () => {
    const work = await mkdtemp(join(tmpdir(), 'pp-multi-names-'));
    const odd = join(work, 'Fashion_MNIST');
    await symlink(FASHION, odd);
    const backend = await startBackend(['--model', odd], { PROTOPOOL_HMAC_SECRET: SECRET });
    try {
      const list = ModelList.parse(await (await call(backend, '/v1/models')).json());
      expect([list.default, list.models.map((m) => m.name)]).toEqual(['fashion-mnist', ['fashion-mnist']]);
    } finally {
      await backend.stop();
    }
    expect(
      ['My Model', 'pp-run-Xy7Q', '__', 'A'.repeat(60)].map((d) => nameOfDirectory(join(work, d))),
    ).toEqual(['my-model', 'pp-run-xy7q', 'model', 'a'.repeat(48)]);
  });

  it('serves every model in a directory of model directories, each under its own name (SageMaker model.tar.gz)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-multi-root-'));
    await symlink(PARTS, join(root, 'parts'));
    await symlink(FASHION, join(root, 'fashion-mnist'));
    const backend = await startBackend(['--model', root], { PROTOPOOL_HMAC_SECRET: SECRET });
    try {
      const list = ModelList.parse(await (await call(backend, '/v1/models')).json());
      // Sorted by name, the first the default: the same whichever order the archive listed them in.
      expect(list.default).toBe('fashion-mnist');
      expect(list.models.map((m) => m.name)).toEqual(['fashion-mnist', 'parts']);
    } finally {
      await backend.stop();
    }
  });
});
