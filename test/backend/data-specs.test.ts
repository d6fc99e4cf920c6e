// Data spec strings: kinds, options after "?", and errors that say what was wrong.
import { describe, expect, it } from 'vitest';
import { DataSpecError, openDataset } from '../../gpu-backend/src/data/specs';

describe('data specs', () => {
  it.each([
    ['cub', /data spec "cub": cub needs a directory \(cub:<dir>\)/],
    ['cub:', /nothing after ":"/],
    [
      'cub:/x?zoom=2',
      /unknown option "zoom" \(known: size, resize, crop, channels, skip-corrupt, cache, stats, decode-workers\)/,
    ],
    ['cub:/x?size=big', /option size=big: expected <n> or <width>x<height>/],
    ['cub:/x?resize=squash', /option resize=squash: /],
    ['cub:/x?size=8&size=9', /option "size" given twice/],
    ['cub:/x?skip-corrupt=maybe', /option skip-corrupt=maybe: expected 1, 0, true, false or nothing/],
    ['imagefolder:/x?crop=box', /unknown option "crop"/],
    ['imagefolder:/x?split=1.5', /option split=1.5: /],
    ['fashion-mnist?size=8', /fashion-mnist takes no options/],
    [
      'mnist',
      /unknown data spec "mnist": expected one of fashion-mnist\[:<dir>\], imagefolder:<dir>, cub:<dir>, cars:<dir>, parts\[:<seed>\]/,
    ],
  ])('refuses %s', async (spec, message) => {
    const err = await openDataset(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataSpecError);
    expect(String((err as Error).message)).toMatch(message);
  });
});
