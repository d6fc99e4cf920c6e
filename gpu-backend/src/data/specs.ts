// Data specs for the CLI ("fashion-mnist", "cub:<dir>?crop=box", "parts:7", …) to opened datasets.
//
// Syntax:  <kind>[:<arg>][?<key>=<value>[&<key>=<value>…]]
//   fashion-mnist[:<dir>|:embedded]
//   imagefolder:<dir>   <dir>/train/<class>/*, <dir>/test/<class>/*; or <dir>/<class>/* split by `split`
//   cub:<dir>           CUB_200_2011 (the directory itself or one holding it)
//   cars:<dir>          Stanford Cars (devkit/, cars_train/, cars_test/, cars_test_annos_withlabels.mat)
//   parts[:<seed>]      the generated parts dataset (CUB layout, cached under the OS temp directory)
// Options of the image kinds (defaults in brackets: imagefolder / cub, cars / parts):
//   size=<n>|<w>x<h>    model input size [224 / 224 / 64]
//   resize=crop|letterbox|stretch   how another aspect ratio fits [crop / stretch / stretch]
//   crop=box|none       fit the annotated bounding box instead of the whole image (cub, cars) [- / box / none]
//   channels=1|3        [3]
//   skip-corrupt[=1]    leave unreadable images out of batches and count them, instead of failing [0]
//   cache=<MB>          memory for decoded, resized images [512]
//   stats=<n>           training images sampled for the normalisation mean/std [500]
//   decode-workers=<n>  threads decoding images off the training thread [cores − 1, at most 2; 0 = inline]
//   split=<fraction>, seed=<n>   imagefolder without train/ and test/: stratified test fraction [0.2, seed 0]
//   classes=<n>, train=<n>, test=<n>   parts: classes, training and test images per class [15, 200, 50]
// Example: cub:/data/CUB_200_2011?crop=box&size=224&skip-corrupt
import { z } from 'zod';
import { openCars } from './cars';
import { type CubOptions, openCub } from './cub';
import type { Dataset } from './dataset';
import { defaultDecodeWorkers } from './decode-pool';
import { openFashionMnist } from './fashion-mnist';
import { DEFAULT_CACHE_MB, type Normalisation } from './image-split';
import { openImageFolder } from './imagefolder';
import { DEFAULT_PARTS, ensurePartsDataset, PARTS_TRAIN_DEFAULTS } from './parts';

export class DataSpecError extends Error {
  override name = 'DataSpecError';
}

const KINDS = ['fashion-mnist[:<dir>]', 'imagefolder:<dir>', 'cub:<dir>', 'cars:<dir>', 'parts[:<seed>]'];

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const flag = z
  .enum(['', '1', '0', 'true', 'false'], { message: 'expected 1, 0, true, false or nothing' })
  .transform((v) => v === '' || v === '1' || v === 'true');
const Size = z
  .string()
  .regex(/^\d+(x\d+)?$/, 'expected <n> or <width>x<height>')
  .transform((v) => {
    const [w, h] = v.split('x').map(Number) as [number, number | undefined];
    return { width: w, height: h ?? w };
  })
  .refine(
    (s) => s.width >= 1 && s.height >= 1 && s.width <= 4096 && s.height <= 4096,
    'sides must be 1..4096',
  );

const ImageOptions = z.object({
  size: Size.optional(),
  resize: z.enum(['crop', 'letterbox', 'stretch']).optional(),
  crop: z.enum(['box', 'none']).optional(),
  channels: z
    .enum(['1', '3'])
    .transform((v) => Number(v) as 1 | 3)
    .optional(),
  'skip-corrupt': flag.optional(),
  cache: int(0, 1 << 20).optional(),
  stats: int(1, 1_000_000).optional(),
  'decode-workers': int(0, 64).optional(),
});
const FolderOptions = ImageOptions.omit({ crop: true }).extend({
  split: z.coerce.number().gt(0).lt(1).optional(),
  seed: int(0, 2 ** 32 - 1).optional(),
});
const PartsSpecOptions = ImageOptions.extend({
  classes: int(2, 200).optional(),
  train: int(1, 10_000).optional(),
  test: int(1, 10_000).optional(),
});

/** Options that come from CLI flags rather than the spec (a spec option wins when both are given). */
export interface OpenOverrides {
  skipCorrupt?: boolean;
  /** A pretrained backbone's input convention, in place of the training images' statistics. */
  normalisation?: Normalisation;
}

function parseOptions<S extends z.ZodObject>(spec: string, query: string | undefined, schema: S): z.infer<S> {
  const raw: Record<string, string> = {};
  for (const part of (query ?? '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key in raw) throw new DataSpecError(`data spec "${spec}": option "${key}" given twice`);
    raw[key] = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
  }
  const known = Object.keys(schema.shape);
  const unknown = Object.keys(raw).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new DataSpecError(
      `data spec "${spec}": unknown option "${unknown[0]}" (known: ${known.join(', ')})`,
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DataSpecError(
      `data spec "${spec}": option ${issue.path.join('.')}=${raw[String(issue.path[0])]}: ${issue.message}`,
    );
  }
  return parsed.data;
}

function imageOptions(
  o: z.infer<typeof ImageOptions>,
  defaults: { size: number; resize: CubOptions['resize']; crop: CubOptions['crop'] },
  overrides: OpenOverrides,
  spec: string,
): CubOptions {
  return {
    width: o.size?.width ?? defaults.size,
    height: o.size?.height ?? defaults.size,
    channels: o.channels ?? 3,
    resize: o.resize ?? defaults.resize,
    crop: o.crop ?? defaults.crop,
    skipCorrupt: o['skip-corrupt'] ?? overrides.skipCorrupt ?? false,
    cacheBytes: (o.cache ?? DEFAULT_CACHE_MB) * 1024 * 1024,
    concurrency: 8,
    decodeWorkers: o['decode-workers'] ?? defaultDecodeWorkers(),
    statsSample: o.stats ?? 500,
    ...(overrides.normalisation ? { normalisation: overrides.normalisation } : {}),
    spec,
  };
}

export async function openDataset(spec: string, overrides: OpenOverrides = {}): Promise<Dataset> {
  const q = spec.indexOf('?');
  const head = q < 0 ? spec : spec.slice(0, q);
  const query = q < 0 ? undefined : spec.slice(q + 1);
  const colon = head.indexOf(':');
  const kind = colon < 0 ? head : head.slice(0, colon);
  const arg = colon < 0 ? undefined : head.slice(colon + 1);
  if (arg === '') throw new DataSpecError(`data spec "${spec}": nothing after ":"`);
  const needDir = () => {
    if (arg === undefined)
      throw new DataSpecError(`data spec "${spec}": ${kind} needs a directory (${kind}:<dir>)`);
    return arg;
  };
  switch (kind) {
    case 'fashion-mnist':
      if (query !== undefined) throw new DataSpecError(`data spec "${spec}": fashion-mnist takes no options`);
      if (overrides.normalisation) {
        throw new DataSpecError(
          `data spec "${spec}": Fashion-MNIST is greyscale 28 px; a pretrained ResNet needs RGB images (imagefolder, cub, cars, parts)`,
        );
      }
      return openFashionMnist(arg);
    case 'imagefolder': {
      const dir = needDir();
      const o = parseOptions(spec, query, FolderOptions);
      return openImageFolder(dir, {
        ...imageOptions(o, { size: 224, resize: 'crop', crop: 'none' }, overrides, spec),
        testFraction: o.split ?? 0.2,
        seed: o.seed ?? 0,
      });
    }
    case 'cub': {
      const dir = needDir();
      const o = parseOptions(spec, query, ImageOptions);
      return openCub(dir, imageOptions(o, { size: 224, resize: 'stretch', crop: 'box' }, overrides, spec));
    }
    case 'cars': {
      const dir = needDir();
      const o = parseOptions(spec, query, ImageOptions);
      return openCars(dir, imageOptions(o, { size: 224, resize: 'stretch', crop: 'box' }, overrides, spec));
    }
    case 'parts': {
      const seed = arg === undefined ? DEFAULT_PARTS.seed : Number(arg);
      if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
        throw new DataSpecError(`data spec "${spec}": seed "${arg}" is not an integer 0..2^32-1`);
      }
      const o = parseOptions(spec, query, PartsSpecOptions);
      // The pictures are drawn at the model size; a different `size` regenerates rather than resamples.
      const size = o.size?.width ?? DEFAULT_PARTS.size;
      if (o.size && o.size.height !== o.size.width) {
        throw new DataSpecError(`data spec "${spec}": parts images are square (size=<n>)`);
      }
      const gen = {
        seed,
        size,
        classes: o.classes ?? DEFAULT_PARTS.classes,
        trainPerClass: o.train ?? DEFAULT_PARTS.trainPerClass,
        testPerClass: o.test ?? DEFAULT_PARTS.testPerClass,
      };
      const root = await ensurePartsDataset(gen);
      const dataset = await openCub(root, {
        ...imageOptions(o, { size, resize: 'stretch', crop: 'none' }, overrides, spec),
        name: `parts (generated, seed ${seed}, ${gen.classes} classes)`,
      });
      return { ...dataset, trainDefaults: PARTS_TRAIN_DEFAULTS };
    }
    default:
      throw new DataSpecError(`unknown data spec "${spec}": expected one of ${KINDS.join(', ')}`);
  }
}
