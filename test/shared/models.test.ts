// Naming the served models: which names a request may carry, what /v1/models lists, and that a model's
// name never enters its identity (its version), so cache ids stay per model version.
import {
  ModelList,
  ModelManifest,
  ModelName,
  modelSummary,
  parseClassifyQuery,
  parseModelQuery,
  resolveOptions,
  unknownModel,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import fashionManifest from '../../models/fashion-mnist/manifest.json';
import partsManifest from '../../models/parts/manifest.json';

// Imported, not read from disk: this suite also runs inside workerd, which has no file system.
const SHIPPED = { parts: partsManifest, 'fashion-mnist': fashionManifest } as const;
const shipped = (name: keyof typeof SHIPPED) => ModelManifest.parse(SHIPPED[name]);

describe('model names', () => {
  it('are lowercase words joined by hyphens, as a URL segment and a metrics label carry them', () => {
    for (const ok of ['parts', 'fashion-mnist', 'cub-200-v2', 'a', '9'])
      expect(ModelName.safeParse(ok).success, ok).toBe(true);
    for (const bad of ['', 'Parts', '-parts', 'parts-', 'parts/x', 'a b', 'x'.repeat(49), '../parts'])
      expect(ModelName.safeParse(bad).success, bad).toBe(false);
  });

  it('come from ?model=, absent meaning the default, and a bad one is a 400 naming the parameter', () => {
    expect(parseModelQuery({})).toBeUndefined();
    expect(parseModelQuery({ model: 'parts', topK: '3' })).toBe('parts');
    expect(() => parseModelQuery({ model: 'Parts!' })).toThrow(
      'Invalid query: model: model names are 1–48 lowercase letters, digits or inner hyphens',
    );
  });

  it('ride with the classify options in one query without becoming an option', () => {
    const query = parseClassifyQuery({ model: 'parts', topK: '2' });
    expect(query.model).toBe('parts');
    expect(resolveOptions({}, query)).toEqual({ explain: true, topK: 2, explainTopK: false });
  });

  it('an unknown one is a 404 that lists what is served', () => {
    expect(unknownModel('cars', ['parts', 'fashion-mnist'])).toMatchObject({
      code: 'not_found',
      message: 'no model "cars" here; this deployment serves: parts, fashion-mnist (GET /v1/models)',
    });
  });
});

describe('the model list', () => {
  it('summarises each shipped manifest under its served name, keeping its version', () => {
    const m = shipped('parts');
    const s = modelSummary('parts', m);
    expect(s).toMatchObject({
      name: 'parts',
      version: m.version,
      title: 'protopool-small-cnn-parts',
      classes: m.classes,
      input: { height: 64, width: 64, channels: 3 },
      prototypes: m.prototypes.length,
      pool: m.architecture.prototypes,
      novelty: true,
    });
    expect(s.classes).toHaveLength(15);
  });

  it('names its default among the models, each once', () => {
    const models = [
      modelSummary('parts', shipped('parts')),
      modelSummary('fashion-mnist', shipped('fashion-mnist')),
    ];
    expect(ModelList.safeParse({ default: 'parts', models }).success).toBe(true);
    expect(ModelList.safeParse({ default: 'cars', models }).error?.issues[0]?.message).toBe(
      'the default model must be listed',
    );
    expect(
      ModelList.safeParse({ default: 'parts', models: [models[0], models[0]] }).error?.issues[0]?.message,
    ).toBe('model names must be unique');
  });
});
