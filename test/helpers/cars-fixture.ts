// Writes small Stanford Cars fixtures in the original layout: devkit/*.mat, cars_train/, cars_test/, labelled test annotations.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flat, jpeg } from './image-files';
import { type MatInput, matFile } from './mat-writer';

export const CARS_CLASSES = ['AM General Hummer SUV 2000', 'Acura RL Sedan 2012', 'Audi R8 Coupe 2012'];

export interface CarImage {
  /** 1-based, as in the .mat files. */
  cls: number;
  width: number;
  height: number;
  /** 1-based inclusive pixel box, as in the .mat files. */
  bbox: [number, number, number, number];
}

export const CAR_FG: [number, number, number] = [240, 240, 240];
export const CAR_BG: [number, number, number] = [30, 90, 30];

function picture(im: CarImage): number[] {
  const out = flat(im.width, im.height, CAR_BG);
  const [x1, y1, x2, y2] = im.bbox;
  for (let y = y1 - 1; y < y2; y++)
    for (let x = x1 - 1; x < x2; x++) out.splice((y * im.width + x) * 3, 3, ...CAR_FG);
  return out;
}

/** `edit(name, vars)` may change or drop (undefined) the variables of a .mat file before it is written. */
export async function writeCarsFixture(
  train: CarImage[],
  test: CarImage[],
  edit: (name: string, vars: Record<string, MatInput>) => Record<string, MatInput> | undefined = (_n, v) => v,
): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'cars-'));
  await mkdir(join(root, 'devkit'));
  const annotations = async (images: CarImage[], dir: string): Promise<MatInput> => {
    await mkdir(join(root, dir));
    const items: Record<string, MatInput>[] = [];
    for (const [i, im] of images.entries()) {
      const fname = `${String(i + 1).padStart(5, '0')}.jpg`;
      await writeFile(join(root, dir, fname), await jpeg(im.width, im.height, picture(im)));
      const [x1, y1, x2, y2] = im.bbox;
      items.push({ bbox_x1: x1, bbox_y1: y1, bbox_x2: x2, bbox_y2: y2, class: im.cls, fname });
    }
    return { struct: items };
  };
  const files: Record<string, Record<string, MatInput>> = {
    'devkit/cars_meta.mat': { class_names: { cell: CARS_CLASSES } },
    'devkit/cars_train_annos.mat': { annotations: await annotations(train, 'cars_train') },
    'cars_test_annos_withlabels.mat': { annotations: await annotations(test, 'cars_test') },
  };
  for (const [name, vars] of Object.entries(files)) {
    const edited = edit(name, vars);
    if (edited) await writeFile(join(root, name), matFile(edited));
  }
  return root;
}
