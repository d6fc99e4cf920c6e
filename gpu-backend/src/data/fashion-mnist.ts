// Fashion-MNIST from IDX files: the embedded 10k/2k subset, the Debian package's full set, or a directory.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Batch, Dataset, Split } from './dataset';
import { DataError } from './errors';
import { readIdx } from './idx';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export const EMBEDDED_FASHION_MNIST = fileURLToPath(new URL('../../data/fashion-mnist', import.meta.url));
export const SYSTEM_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

function file(dir: string, stem: string): string {
  const gz = join(dir, `${stem}.gz`);
  return existsSync(gz) || !existsSync(join(dir, stem)) ? gz : join(dir, stem);
}

async function readSplit(
  dir: string,
  prefix: 'train' | 't10k',
  name: string,
  mean: () => number,
  std: () => number,
) {
  const imagesFile = file(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = file(dir, `${prefix}-labels-idx1-ubyte`);
  const images = await readIdx(imagesFile, 3);
  const labels = await readIdx(labelsFile, 1);
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new DataError(labelsFile, `header.dims: ${labels.dims[0]} labels for ${n} images in ${imagesFile}`);
  }
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0)
    throw new DataError(labelsFile, `data[${bad}]: label ${labels.data[bad]} is not a class 0..9`);
  const split: Split = {
    size: n,
    labels: Int32Array.from(labels.data),
    id: (i) => `${name}/${i}`,
    load: async (indices): Promise<Batch> => {
      const pixels = h * w;
      const x = new Float32Array(indices.length * pixels);
      const m = mean();
      const s = std();
      indices.forEach((idx, b) => {
        const src = images.data.subarray(idx * pixels, (idx + 1) * pixels);
        for (let p = 0; p < pixels; p++) x[b * pixels + p] = (src[p]! / 255 - m) / s;
      });
      return {
        x,
        shape: [indices.length, h, w, 1],
        labels: Int32Array.from(indices, (i) => labels.data[i]!),
        ids: indices.map((i) => `${name}/${i}`),
      };
    },
  };
  return { split, images, h, w };
}

/**
 * `dir` undefined: the full set from the Debian package when installed, else the embedded subset.
 * `dir` "embedded": always the embedded subset (the shipped model is trained on it, reproducibly).
 */
export async function openFashionMnist(dir?: string): Promise<Dataset> {
  const resolved =
    dir === 'embedded' || (dir === undefined && !existsSync(SYSTEM_FASHION_MNIST))
      ? EMBEDDED_FASHION_MNIST
      : (dir ?? SYSTEM_FASHION_MNIST);
  if (!existsSync(resolved)) throw new DataError(resolved, 'no such directory');
  let mean = 0;
  let std = 1;
  const train = await readSplit(
    resolved,
    'train',
    'train',
    () => mean,
    () => std,
  );
  const test = await readSplit(
    resolved,
    't10k',
    'test',
    () => mean,
    () => std,
  );
  // Normalisation statistics of the training pixels (recorded in the manifest).
  let sum = 0;
  let sq = 0;
  for (const v of train.images.data) {
    sum += v / 255;
    sq += (v / 255) ** 2;
  }
  const count = train.images.data.length;
  mean = sum / count;
  std = Math.sqrt(sq / count - mean * mean);
  const which = resolved === EMBEDDED_FASHION_MNIST ? 'embedded subset' : resolved;
  return {
    spec: dir === undefined ? 'fashion-mnist' : `fashion-mnist:${dir}`,
    description: `Fashion-MNIST (${which}: ${train.split.size} train / ${test.split.size} test)`,
    classes: FASHION_MNIST_CLASSES,
    input: { height: train.h, width: train.w, channels: 1, resize: 'stretch', mean: [mean], std: [std] },
    train: train.split,
    test: test.split,
  };
}
