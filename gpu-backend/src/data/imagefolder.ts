// ImageFolder: <dir>/train/<class>/*, <dir>/test/<class>/*, or <dir>/<class>/* with a seeded test fraction.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { permutation } from '../util/random';
import type { CubOptions } from './cub';
import type { Dataset } from './dataset';
import { DataError } from './errors';
import { type ImageEntry, ImageSplit, type ImageSplitOptions, inputSpecOf } from './image-split';

export const IMAGE_EXTENSIONS = /\.(jpe?g|png)$/i;

export interface ImageFolderOptions extends CubOptions {
  /** Test fraction when there are no train/ and test/ subdirectories. */
  testFraction: number;
  seed: number;
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    const items = await readdir(dir, { withFileTypes: true });
    return items
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    throw new DataError(dir, `cannot list (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Image files per class directory, sorted so indices are stable; other files are counted, not read. */
async function listClasses(dir: string): Promise<{ byClass: Map<string, string[]>; ignored: number }> {
  const byClass = new Map<string, string[]>();
  let ignored = 0;
  for (const name of await subdirs(dir)) {
    const items = await readdir(join(dir, name), { withFileTypes: true });
    const files: string[] = [];
    for (const item of items) {
      if (item.name.startsWith('.')) continue;
      if (item.isFile() && IMAGE_EXTENSIONS.test(item.name)) files.push(item.name);
      else ignored++;
    }
    byClass.set(name, files.sort());
  }
  return { byClass, ignored };
}

function toEntries(
  dir: string,
  split: string,
  byClass: Map<string, string[]>,
  classes: string[],
): ImageEntry[] {
  const out: ImageEntry[] = [];
  for (const [name, files] of byClass) {
    const label = classes.indexOf(name);
    for (const f of files) out.push({ file: join(dir, name, f), label, id: `${split}/${name}/${f}` });
  }
  return out;
}

export async function openImageFolder(dir: string, o: ImageFolderOptions): Promise<Dataset> {
  if (!existsSync(dir)) throw new DataError(dir, 'no such directory');
  const hasSplits = existsSync(join(dir, 'train'));
  let train: ImageEntry[];
  let test: ImageEntry[];
  let classes: string[];
  let ignored: number;
  if (hasSplits) {
    if (!existsSync(join(dir, 'test'))) {
      throw new DataError(
        join(dir, 'test'),
        'missing: train/ needs a test/ beside it (or use <dir>/<class>/ with split=)',
      );
    }
    const tr = await listClasses(join(dir, 'train'));
    const te = await listClasses(join(dir, 'test'));
    classes = [...tr.byClass.keys()];
    for (const name of te.byClass.keys()) {
      if (!tr.byClass.has(name))
        throw new DataError(join(dir, 'test', name), 'class directory has no counterpart in train/');
    }
    train = toEntries(join(dir, 'train'), 'train', tr.byClass, classes);
    test = toEntries(join(dir, 'test'), 'test', te.byClass, classes);
    ignored = tr.ignored + te.ignored;
  } else {
    const all = await listClasses(dir);
    classes = [...all.byClass.keys()];
    ignored = all.ignored;
    train = [];
    test = [];
    // Per class, so every class keeps the same test fraction (stratified).
    for (const [name, files] of all.byClass) {
      const order = permutation(files.length, o.seed + classes.indexOf(name));
      const nTest = Math.round(files.length * o.testFraction);
      const entries = toEntries(dir, '', new Map([[name, files]]), classes).map((e) => ({
        ...e,
        id: e.id.slice(1),
      }));
      order.forEach((k, i) => {
        (i < nTest ? test : train).push(entries[k]!);
      });
    }
  }
  if (classes.length < 2)
    throw new DataError(
      hasSplits ? join(dir, 'train') : dir,
      `${classes.length} class directories, need at least 2`,
    );
  const empty = classes.find((c) => !train.some((e) => classes[e.label] === c));
  if (empty)
    throw new DataError(
      join(dir, hasSplits ? 'train' : '', empty),
      'class has no training images (.jpg, .jpeg, .png)',
    );

  let norm = { mean: new Array(o.channels).fill(0.5), std: new Array(o.channels).fill(0.25) };
  const splitOptions: ImageSplitOptions = { ...o, cropToBox: false };
  const trainSplit = new ImageSplit(train, splitOptions, () => norm);
  const testSplit = new ImageSplit(test, splitOptions, () => norm);
  norm = o.normalisation ?? (await trainSplit.stats(o.statsSample));
  const how = hasSplits ? 'train/ + test/' : `test fraction ${o.testFraction}, seed ${o.seed}`;
  const skippedNote = ignored ? `, ${ignored} non-image entries ignored` : '';
  return {
    spec: o.spec ?? `imagefolder:${dir}`,
    description: `ImageFolder (${dir}, ${how}: ${train.length} train / ${test.length} test, ${classes.length} classes${skippedNote}, ${o.width}×${o.height} ${o.resize})`,
    classes,
    input: inputSpecOf(o, norm),
    train: trainSplit,
    test: testSplit,
  };
}
