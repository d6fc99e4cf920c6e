// CUB-200-2011 in its original layout (images.txt, labels, split, boxes, classes, parts), optionally cropped to boxes.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset, PartLocation } from './dataset';
import { DataError } from './errors';
import type { Rect } from './image';
import {
  type ImageEntry,
  ImageSplit,
  type ImageSplitOptions,
  inputSpecOf,
  type Normalisation,
} from './image-split';

export interface ImageLoaderOptions extends Omit<ImageSplitOptions, 'cropToBox'> {
  crop: 'box' | 'none';
  /** Training images sampled for the normalisation statistics. */
  statsSample: number;
  /**
   * Fixed normalisation instead of the training images' statistics: a pretrained backbone expects the
   * convention it was trained with (ImageNet's for torchvision and the ProtoPool authors' ResNets).
   */
  normalisation?: Normalisation;
}

export interface CubOptions extends ImageLoaderOptions {
  /** Shown in descriptions (the parts generator reuses this loader). */
  name?: string;
  spec?: string;
}

interface Line {
  n: number;
  fields: string[];
}

/**
 * Reads a whitespace-separated annotation file; `restJoined` keeps the last column whole (names with spaces).
 * Errors name the file and line.
 */
export async function readTable(file: string, columns: number, restJoined = false): Promise<Line[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DataError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const out: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let fields = line.split(/\s+/);
    if (restJoined && fields.length > columns) {
      fields = [...fields.slice(0, columns - 1), fields.slice(columns - 1).join(' ')];
    }
    if (fields.length !== columns) {
      throw new DataError(
        file,
        `line ${i + 1}: expected ${columns} fields, got ${fields.length} ("${line}")`,
      );
    }
    out.push({ n: i + 1, fields });
  });
  return out;
}

export function numberField(file: string, line: Line, col: number, what: string, integer = false): number {
  const raw = line.fields[col]!;
  const v = Number(raw);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new DataError(
      file,
      `line ${line.n}: ${what} "${raw}" is not ${integer ? 'an integer' : 'a number'}`,
    );
  }
  return v;
}

/** Per-image values keyed by image id, refusing duplicates and unknown ids. */
function byImage<T>(file: string, lines: Line[], ids: Set<number>, value: (l: Line) => T): Map<number, T> {
  const out = new Map<number, T>();
  for (const l of lines) {
    const id = numberField(file, l, 0, 'image id', true);
    if (!ids.has(id)) throw new DataError(file, `line ${l.n}: image id ${id} is not in images.txt`);
    if (out.has(id)) throw new DataError(file, `line ${l.n}: image id ${id} appears twice`);
    out.set(id, value(l));
  }
  return out;
}

/** The CUB_200_2011 directory itself, or a directory holding it. */
export function cubRoot(dir: string): string {
  if (existsSync(join(dir, 'images.txt'))) return dir;
  if (existsSync(join(dir, 'CUB_200_2011', 'images.txt'))) return join(dir, 'CUB_200_2011');
  if (!existsSync(dir)) throw new DataError(dir, 'no such directory');
  throw new DataError(join(dir, 'images.txt'), 'missing: not a CUB_200_2011 directory (nor one holding it)');
}

export async function openCub(dir: string, o: CubOptions): Promise<Dataset> {
  const root = cubRoot(dir);
  const f = (name: string) => join(root, name);

  const images = await readTable(f('images.txt'), 2);
  const paths = new Map<number, { path: string; n: number }>();
  for (const l of images) {
    const id = numberField(f('images.txt'), l, 0, 'image id', true);
    if (paths.has(id)) throw new DataError(f('images.txt'), `line ${l.n}: image id ${id} appears twice`);
    paths.set(id, { path: l.fields[1]!, n: l.n });
  }
  const ids = new Set(paths.keys());

  const classLines = await readTable(f('classes.txt'), 2, true);
  const classes = classLines.map((l, i) => {
    const id = numberField(f('classes.txt'), l, 0, 'class id', true);
    if (id !== i + 1)
      throw new DataError(
        f('classes.txt'),
        `line ${l.n}: class id ${id}, expected ${i + 1} (ids run 1..n in order)`,
      );
    // CUB names classes "001.Black_footed_Albatross": the number is the id again.
    return l.fields[1]!.replace(/^\d+\./, '').replaceAll('_', ' ');
  });

  const labelsFile = f('image_class_labels.txt');
  const labels = byImage(labelsFile, await readTable(labelsFile, 2), ids, (l) => {
    const c = numberField(labelsFile, l, 1, 'class id', true);
    if (c < 1 || c > classes.length) {
      throw new DataError(
        labelsFile,
        `line ${l.n}: class id ${c} outside 1..${classes.length} (classes.txt)`,
      );
    }
    return c - 1;
  });
  const splitFile = f('train_test_split.txt');
  const isTrain = byImage(splitFile, await readTable(splitFile, 2), ids, (l) => {
    const v = l.fields[1];
    if (v !== '0' && v !== '1')
      throw new DataError(splitFile, `line ${l.n}: is_training_image "${v}" is not 0 or 1`);
    return v === '1';
  });

  const boxesFile = f('bounding_boxes.txt');
  let boxes: Map<number, Rect> | undefined;
  if (existsSync(boxesFile) || o.crop === 'box') {
    boxes = byImage(boxesFile, await readTable(boxesFile, 5), ids, (l) => {
      const [x, y, w, h] = [1, 2, 3, 4].map((c) =>
        numberField(boxesFile, l, c, ['x', 'y', 'width', 'height'][c - 1]!),
      );
      if (w! <= 0 || h! <= 0) throw new DataError(boxesFile, `line ${l.n}: box of size ${w}×${h}`);
      return { x0: x!, y0: y!, x1: x! + w!, y1: y! + h! };
    });
  }

  let partNames: string[] | undefined;
  let parts: Map<number, PartLocation[]> | undefined;
  const partsFile = f('parts/parts.txt');
  if (existsSync(partsFile)) {
    const partLines = await readTable(partsFile, 2, true);
    partNames = partLines.map((l, i) => {
      const id = numberField(partsFile, l, 0, 'part id', true);
      if (id !== i + 1) throw new DataError(partsFile, `line ${l.n}: part id ${id}, expected ${i + 1}`);
      return l.fields[1]!;
    });
    const locsFile = f('parts/part_locs.txt');
    parts = new Map();
    for (const l of await readTable(locsFile, 5)) {
      const id = numberField(locsFile, l, 0, 'image id', true);
      if (!ids.has(id)) throw new DataError(locsFile, `line ${l.n}: image id ${id} is not in images.txt`);
      const part = numberField(locsFile, l, 1, 'part id', true);
      if (part < 1 || part > partNames.length) {
        throw new DataError(
          locsFile,
          `line ${l.n}: part id ${part} outside 1..${partNames.length} (parts/parts.txt)`,
        );
      }
      const v = l.fields[4];
      if (v !== '0' && v !== '1') throw new DataError(locsFile, `line ${l.n}: visible "${v}" is not 0 or 1`);
      const list = parts.get(id) ?? [];
      list.push({
        part: part - 1,
        x: numberField(locsFile, l, 2, 'x'),
        y: numberField(locsFile, l, 3, 'y'),
        visible: v === '1',
      });
      parts.set(id, list);
    }
  }

  const train: ImageEntry[] = [];
  const test: ImageEntry[] = [];
  for (const [id, { path, n }] of paths) {
    const label = labels.get(id);
    if (label === undefined)
      throw new DataError(labelsFile, `image id ${id} (images.txt line ${n}) has no class label`);
    const training = isTrain.get(id);
    if (training === undefined)
      throw new DataError(splitFile, `image id ${id} (images.txt line ${n}) is in neither split`);
    const file = join(root, 'images', path);
    if (!o.skipCorrupt && !existsSync(file)) {
      throw new DataError(file, `missing (listed in images.txt line ${n}; --skip-corrupt skips such files)`);
    }
    const box = boxes?.get(id);
    if (boxes && !box)
      throw new DataError(boxesFile, `image id ${id} (images.txt line ${n}) has no bounding box`);
    const entry: ImageEntry = { file, label, id: path, ...(box ? { box } : {}) };
    if (parts) entry.parts = parts.get(id) ?? [];
    (training ? train : test).push(entry);
  }
  if (train.length === 0) throw new DataError(splitFile, 'no training images');

  let norm = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  const splitOptions: ImageSplitOptions = { ...o, cropToBox: o.crop === 'box' };
  const trainSplit = new ImageSplit(train, splitOptions, () => norm, partNames);
  const testSplit = new ImageSplit(test, splitOptions, () => norm, partNames);
  norm = o.normalisation ?? (await trainSplit.stats(o.statsSample));
  const cropped = o.crop === 'box' ? ', cropped to boxes' : '';
  return {
    spec: o.spec ?? `cub:${dir}`,
    description: `${o.name ?? 'CUB-200-2011'} (${root}: ${train.length} train / ${test.length} test, ${classes.length} classes${cropped}, ${o.width}×${o.height} ${o.resize})`,
    classes,
    input: inputSpecOf(o, norm),
    train: trainSplit,
    test: testSplit,
  };
}
