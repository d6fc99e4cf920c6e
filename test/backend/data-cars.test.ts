// Stanford Cars loader on generated fixtures (MAT-file annotations, original layout): counts, labels, boxes; clear errors.
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { CAR_FG, CARS_CLASSES, type CarImage, writeCarsFixture } from '../helpers/cars-fixture';

// Box columns 11..30, rows 6..15 (1-based, inclusive) of a 40×30 image = [10, 30) × [5, 15) in pixel edges.
const TRAIN: CarImage[] = [
  { cls: 1, width: 40, height: 30, bbox: [11, 6, 30, 15] },
  { cls: 2, width: 32, height: 32, bbox: [9, 9, 24, 24] },
  { cls: 3, width: 48, height: 24, bbox: [1, 1, 48, 24] },
];
const TEST: CarImage[] = [
  { cls: 3, width: 32, height: 32, bbox: [9, 9, 24, 24] },
  { cls: 1, width: 32, height: 32, bbox: [9, 9, 24, 24] },
];

describe('Stanford Cars loader', () => {
  it('reads classes, labels and boxes from the devkit .mat files and crops to the boxes', async () => {
    const dir = await writeCarsFixture(TRAIN, TEST);
    const ds = await openDataset(`cars:${dir}?size=16`);
    expect(ds.classes).toEqual(CARS_CLASSES);
    expect([ds.train.size, ds.test.size]).toEqual([3, 2]);
    expect([...ds.train.labels]).toEqual([0, 1, 2]);
    expect([...ds.test.labels]).toEqual([2, 0]);
    expect(ds.train.id(1)).toBe('cars_train/00002.jpg');
    // Cropped to boxes, the training pixels are the car colour.
    ds.input.mean.forEach((m, k) => {
      expect(Math.abs(m * 255 - CAR_FG[k]!)).toBeLessThan(4);
    });
    const b = await ds.train.load([0]);
    expect(b.boxes![0]).toEqual({ x0: 0, y0: 0, x1: 16, y1: 16 });
    expect(b.parts).toBeUndefined();
  });

  it('maps the box through a whole-image resize', async () => {
    const dir = await writeCarsFixture(TRAIN, TEST);
    const ds = await openDataset(`cars:${dir}?crop=none&size=20x15`);
    // 40×30 → 20×15 halves everything: [10, 30) × [5, 15) → [5, 15) × [2.5, 7.5).
    expect((await ds.train.load([0])).boxes![0]).toEqual({ x0: 5, y0: 2.5, x1: 15, y1: 7.5 });
  });

  it('finds the labelled test annotations beside devkit/ or inside it, and names them when absent', async () => {
    const dir = await writeCarsFixture(TRAIN, TEST);
    await rename(
      join(dir, 'cars_test_annos_withlabels.mat'),
      join(dir, 'devkit', 'cars_test_annos_withlabels.mat'),
    );
    expect((await openDataset(`cars:${dir}?size=16`)).test.size).toBe(2);
    await rm(join(dir, 'devkit', 'cars_test_annos_withlabels.mat'));
    await expect(openDataset(`cars:${dir}`)).rejects.toThrow(
      /cars_test_annos_withlabels.mat: cannot read \(ENOENT\)/,
    );
  });

  it.each([
    ['devkit/cars_meta.mat', () => undefined, /devkit\/cars_meta.mat: cannot read \(ENOENT\)/],
    [
      'devkit/cars_meta.mat',
      () => ({ names: 'x' }),
      /cars_meta.mat: variable "class_names": expected a cell array, got nothing/,
    ],
    [
      'devkit/cars_train_annos.mat',
      () => ({
        annotations: {
          struct: [{ bbox_x1: 1, bbox_y1: 1, bbox_x2: 5, bbox_y2: 5, class: 9, fname: '00001.jpg' }],
        },
      }),
      /cars_train_annos.mat: annotations\(1\).class: 9 outside 1..3/,
    ],
    [
      'devkit/cars_train_annos.mat',
      () => ({ annotations: { struct: [{ bbox_x1: 1, bbox_y1: 1, bbox_x2: 5, bbox_y2: 5, class: 1 }] } }),
      /cars_train_annos.mat: annotations: no field "fname"/,
    ],
    [
      'cars_test_annos_withlabels.mat',
      () => ({
        annotations: {
          struct: [{ bbox_x1: 1, bbox_y1: 1, bbox_x2: 5, bbox_y2: 5, class: 'one', fname: '00001.jpg' }],
        },
      }),
      /annotations\(1\).class: expected a number, got char/,
    ],
  ])('refuses a malformed %s, naming the file and element', async (name, replace, message) => {
    const dir = await writeCarsFixture(TRAIN, TEST, (n, v) => (n === name ? replace() : v));
    await expect(openDataset(`cars:${dir}`)).rejects.toThrow(message);
  });

  it('names a missing image, or skips and counts it with skip-corrupt', async () => {
    const dir = await writeCarsFixture(TRAIN, TEST);
    await rm(join(dir, 'cars_test', '00002.jpg'));
    await expect(openDataset(`cars:${dir}`)).rejects.toThrow(
      /cars_test\/00002.jpg: missing \(named by annotations\(2\) in .*cars_test_annos_withlabels.mat/,
    );
    const ds = await openDataset(`cars:${dir}?skip-corrupt&size=16`);
    const b = await ds.test.load([0, 1]);
    expect([...b.labels]).toEqual([2]);
    expect(ds.test.skipped!.count).toBe(1);
  });
});
