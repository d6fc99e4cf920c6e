// Stanford Cars in its original layout: devkit .mat annotations (classes, boxes), cars_train/ and cars_test/ images.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CubOptions } from './cub';
import type { Dataset } from './dataset';
import { DataError } from './errors';
import { type ImageEntry, ImageSplit, type ImageSplitOptions, inputSpecOf } from './image-split';
import { type MatValue, matNumber, matString, parseMat } from './matlab';

async function readMat(file: string): Promise<Record<string, MatValue>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new DataError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseMat(bytes, file);
}

function firstExisting(candidates: string[]): string {
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

/** `annotations` of one split as image entries; boxes are 1-based inclusive pixels in the .mat files. */
function entries(
  file: string,
  mat: Record<string, MatValue>,
  imageDir: string,
  classes: number,
  o: CubOptions,
): ImageEntry[] {
  const annos = mat.annotations;
  if (annos?.kind !== 'struct') {
    throw new DataError(
      file,
      `variable "annotations": expected a struct array, got ${annos ? annos.kind : 'nothing'}`,
    );
  }
  for (const field of ['bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2', 'class', 'fname']) {
    if (!annos.fields.includes(field))
      throw new DataError(file, `annotations: no field "${field}" (has ${annos.fields.join(', ')})`);
  }
  return annos.items.map((a, i) => {
    const at = `annotations(${i + 1})`;
    const [x1, y1, x2, y2] = ['bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2'].map((k) =>
      matNumber(a[k], file, `${at}.${k}`),
    );
    const cls = matNumber(a.class, file, `${at}.class`);
    if (!Number.isInteger(cls) || cls < 1 || cls > classes) {
      throw new DataError(file, `${at}.class: ${cls} outside 1..${classes} (cars_meta.mat)`);
    }
    if (x2! < x1! || y2! < y1!)
      throw new DataError(file, `${at}: box (${x1}, ${y1})–(${x2}, ${y2}) is empty`);
    const fname = matString(a.fname, file, `${at}.fname`);
    const path = join(imageDir, fname);
    if (!o.skipCorrupt && !existsSync(path)) {
      throw new DataError(path, `missing (named by ${at} in ${file}; --skip-corrupt skips such files)`);
    }
    const dir = imageDir.split(/[\\/]/).pop()!;
    return {
      file: path,
      label: cls - 1,
      id: `${dir}/${fname}`,
      box: { x0: x1! - 1, y0: y1! - 1, x1: x2!, y1: y2! },
    };
  });
}

export async function openCars(dir: string, o: CubOptions): Promise<Dataset> {
  if (!existsSync(dir)) throw new DataError(dir, 'no such directory');
  const metaFile = join(dir, 'devkit', 'cars_meta.mat');
  const meta = await readMat(metaFile);
  const names = meta.class_names;
  if (names?.kind !== 'cell') {
    throw new DataError(
      metaFile,
      `variable "class_names": expected a cell array, got ${names ? names.kind : 'nothing'}`,
    );
  }
  const classes = names.items.map((v, i) => matString(v, metaFile, `class_names{${i + 1}}`));
  if (classes.length < 2)
    throw new DataError(metaFile, `class_names: ${classes.length} classes, need at least 2`);

  const trainFile = join(dir, 'devkit', 'cars_train_annos.mat');
  // The labelled test annotations were published separately; people put them beside devkit/ or inside it.
  const testFile = firstExisting([
    join(dir, 'cars_test_annos_withlabels.mat'),
    join(dir, 'devkit', 'cars_test_annos_withlabels.mat'),
  ]);
  const train = entries(trainFile, await readMat(trainFile), join(dir, 'cars_train'), classes.length, o);
  const test = entries(testFile, await readMat(testFile), join(dir, 'cars_test'), classes.length, o);
  if (train.length === 0) throw new DataError(trainFile, 'annotations: no training images');

  let norm = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  const splitOptions: ImageSplitOptions = { ...o, cropToBox: o.crop === 'box' };
  const trainSplit = new ImageSplit(train, splitOptions, () => norm);
  const testSplit = new ImageSplit(test, splitOptions, () => norm);
  norm = o.normalisation ?? (await trainSplit.stats(o.statsSample));
  const cropped = o.crop === 'box' ? ', cropped to boxes' : '';
  return {
    spec: o.spec ?? `cars:${dir}`,
    description: `Stanford Cars (${dir}: ${train.length} train / ${test.length} test, ${classes.length} classes${cropped}, ${o.width}×${o.height} ${o.resize})`,
    classes,
    input: inputSpecOf(o, norm),
    train: trainSplit,
    test: testSplit,
  };
}
