// The JSON contracts: valid documents parse, and each kind of mistake is named by its path.
import {
  ApiError,
  ClassifyQuery,
  ClassifyRequest,
  Explanation,
  encodeJson,
  ModelManifest,
  tensor,
  zodApiError,
  zodIssueLines,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const HASH = 'a'.repeat(64);
const box = { x0: 2, y0: 3, x1: 10, y1: 12 };

const manifest = {
  format: 'protopool-manifest/1',
  version: HASH,
  name: 'fashion-mnist-small',
  createdAt: '2026-11-26T10:00:00.000Z',
  classes: ['T-shirt', 'Trouser'],
  input: { height: 28, width: 28, channels: 1, resize: 'stretch', mean: [0.286], std: [0.353] },
  architecture: {
    backbone: 'small-cnn',
    prototypes: 4,
    slotsPerClass: 2,
    depth: 16,
    featureGrid: { height: 7, width: 7 },
    focal: 'reference',
  },
  prototypes: [
    {
      id: 0,
      source: { imageId: 'train/17', label: 0, cell: { h: 1, w: 2 }, box },
      usedBy: [{ classIndex: 0, slot: 0 }],
    },
    { id: 3, source: null, usedBy: [] },
  ],
  engine: 'wasm',
  metrics: { accuracy: 0.9 },
  files: [{ path: 'model.json', bytes: 10, sha256: HASH }],
};

const slot = {
  slot: 0,
  prototypeId: 0,
  assignmentWeight: 1,
  similarity: 2.5,
  weight: 1,
  contribution: 2.5,
  peak: { h: 1, w: 2 },
  box,
  activation: { height: 2, width: 2, data: [0, 1, 2, 3] },
  source: manifest.prototypes[0]!.source,
};

const explanation = {
  id: HASH,
  modelVersion: HASH,
  prediction: { classIndex: 0, label: 'T-shirt', logit: 3, probability: 0.8 },
  topK: [{ classIndex: 0, label: 'T-shirt', logit: 3, probability: 0.8 }],
  classes: [{ classIndex: 0, label: 'T-shirt', logit: 3, slots: [slot], residual: 0.5 }],
};

function messageOf(schema: { safeParse(v: unknown): { success: boolean; error?: unknown } }, value: unknown) {
  const result = schema.safeParse(value);
  expect(result.success).toBe(false);
  return zodApiError(result.error as never).error.message;
}

describe('model manifest', () => {
  it('accepts a complete manifest', () => {
    expect(ModelManifest.parse(manifest)).toEqual(manifest);
  });

  it('names the field of each mistake', () => {
    expect(messageOf(ModelManifest, { ...manifest, version: 'abc' })).toMatch(
      /^Invalid request: version: expected 64/,
    );
    expect(messageOf(ModelManifest, { ...manifest, classes: ['only'] })).toMatch(/classes: Too small/);
    expect(messageOf(ModelManifest, { ...manifest, input: { ...manifest.input, channels: 2 } })).toMatch(
      /input.channels/,
    );
    expect(messageOf(ModelManifest, { ...manifest, input: { ...manifest.input, std: [0] } })).toMatch(
      /input.std.0/,
    );
    const badBox = structuredClone(manifest);
    badBox.prototypes[0]!.source!.box = { x0: 5, y0: 0, x1: 5, y1: 1 };
    expect(messageOf(ModelManifest, badBox)).toMatch(/prototypes.0.source.box: box must have x1 > x0/);
  });
});

describe('explanation', () => {
  it('accepts a complete explanation', () => {
    expect(Explanation.parse(explanation)).toEqual(explanation);
  });

  it('refuses an activation map whose data does not fill its grid', () => {
    const bad = structuredClone(explanation);
    bad.classes[0]!.slots[0]!.activation.data.pop();
    expect(messageOf(Explanation, bad)).toMatch(
      /classes.0.slots.0.activation: data length must equal height × width/,
    );
  });

  it('refuses an assignment weight outside [0,1] and a probability above 1', () => {
    const bad = structuredClone(explanation);
    bad.classes[0]!.slots[0]!.assignmentWeight = 1.5;
    bad.prediction.probability = 2;
    const msg = messageOf(Explanation, bad);
    expect(msg).toMatch(/prediction.probability/);
    expect(msg).toMatch(/classes.0.slots.0.assignmentWeight/);
  });
});

describe('classify request', () => {
  it('accepts an image or a tensor and fills default options', () => {
    expect(ClassifyRequest.parse({ image: { mediaType: 'image/png', data: 'iVBORw0KGgo=' } })).toEqual({
      image: { mediaType: 'image/png', data: 'iVBORw0KGgo=' },
      options: { explain: true, topK: 3, explainTopK: false },
    });
    const t = encodeJson(tensor('float32', [1, 28, 28, 1], new Float32Array(784)));
    expect(ClassifyRequest.parse({ tensor: t, options: { explain: false, topK: 5 } })).toEqual({
      tensor: t,
      options: { explain: false, topK: 5, explainTopK: false },
    });
  });

  it('refuses both or neither input, unknown keys and out-of-range top-k', () => {
    const t = encodeJson(tensor('uint8', [1], new Uint8Array(1)));
    expect(
      ClassifyRequest.safeParse({ tensor: t, image: { mediaType: 'image/png', data: 'AA==' } }).success,
    ).toBe(false);
    expect(messageOf(ClassifyRequest, {})).toMatch(/\(root\): give exactly one of "image" or "tensor"/);
    expect(messageOf(ClassifyRequest, { tensor: t, extra: 1 })).toMatch(/Unrecognized key: "extra"/);
    expect(messageOf(ClassifyRequest, { tensor: t, options: { topK: 21 } })).toMatch(/options.topK: Too big/);
    expect(messageOf(ClassifyRequest, { image: { mediaType: 'image/gif', data: 'AA==' } })).toMatch(
      /image.mediaType/,
    );
  });

  it('reads options from a query string', () => {
    expect(ClassifyQuery.parse({ explain: 'false', topK: '5' })).toEqual({ explain: false, topK: 5 });
    expect(ClassifyQuery.parse({})).toEqual({});
    expect(ClassifyQuery.safeParse({ explain: 'maybe' }).success).toBe(false);
    expect(ClassifyQuery.safeParse({ topK: '0' }).success).toBe(false);
  });
});

describe('API error', () => {
  it('derives a 400 body from a zod error that parses as an ApiError', () => {
    const result = ClassifyQuery.safeParse({ topK: 'x' });
    expect(result.success).toBe(false);
    const body = zodApiError(result.error!, 'query');
    expect(ApiError.parse(body)).toEqual(body);
    expect(body.error.code).toBe('bad_request');
    expect(body.error.message).toMatch(/^Invalid query: topK: /);
    expect(body.error.details).toEqual({ issues: [expect.objectContaining({ path: ['topK'] })] });
  });

  it('refuses unknown codes and empty messages', () => {
    expect(ApiError.safeParse({ error: { code: 'teapot', message: 'x' } }).success).toBe(false);
    expect(ApiError.safeParse({ error: { code: 'internal', message: '' } }).success).toBe(false);
  });
});

describe('zod issues in words', () => {
  const Schema = z.object({ a: z.object({ b: z.number().max(3) }), c: z.string() });

  it('one "path: message" line per issue, "(root)" for the value itself, after a label when given', () => {
    const error = Schema.safeParse({ a: { b: 5 }, c: 1 }).error!;
    expect(zodIssueLines(error)).toEqual([
      'a.b: Too big: expected number to be <=3',
      'c: Invalid input: expected string, received number',
    ]);
    expect(zodIssueLines(error, 'field')[0]).toBe('field a.b: Too big: expected number to be <=3');
    expect(zodIssueLines(z.string().safeParse(2).error!)).toEqual([
      '(root): Invalid input: expected string, received number',
    ]);
  });
});
