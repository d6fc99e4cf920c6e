// CUB-200-2011 loader on generated fixtures in the original layout: counts, labels, boxes and part locations
// after crop and resize (by hand), and clear errors for malformed files, bad lines and missing or corrupt images.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { type CubImage, writeCubFixture } from '../helpers/cub-fixture';

const BG: [number, number, number] = [20, 20, 200];
const FG: [number, number, number] = [220, 200, 10];

function image(cls: number, train: boolean, extra: Partial<CubImage> = {}): CubImage {
  return {
    cls,
    train,
    width: 40,
    height: 32,
    background: BG,
    foreground: FG,
    box: { x: 8, y: 8, w: 16, h: 16 },
    parts: [
      [16, 16, 1],
      [10, 10, 1],
      [0, 0, 0],
    ],
    ...extra,
  };
}

// Image 1: box x 10..30, y 5..15 of 40×30. Parts: (20, 10) and (12, 14) inside the box, (35, 10) outside it.
const FIRST = image(0, true, {
  width: 40,
  height: 30,
  box: { x: 10, y: 5, w: 20, h: 10 },
  parts: [
    [20, 10, 1],
    [12, 14, 1],
    [35, 10, 1],
  ],
});
const IMAGES = [
  FIRST,
  image(0, false),
  image(1, true),
  image(1, false),
  image(2, true),
  image(2, false, { width: 24 }),
];

describe('CUB-200-2011 loader', () => {
  it('reads counts, classes, labels and ids; crops to boxes and carries parts through crop + resize', async () => {
    const dir = await writeCubFixture(IMAGES);
    const ds = await openDataset(`cub:${dir}?size=16`);
    expect(ds.classes).toEqual(['Black footed Albatross', 'Laysan Albatross', 'Sooty Albatross']);
    expect(ds.train.size).toBe(3);
    expect(ds.test.size).toBe(3);
    expect([...ds.train.labels]).toEqual([0, 1, 2]);
    expect([...ds.test.labels]).toEqual([0, 1, 2]);
    expect(ds.train.id(0)).toBe('001.Black_footed_Albatross/Black_footed_Albatross_0001.jpg');
    expect(ds.train.partNames).toEqual(['back', 'beak', 'left eye']);
    expect(ds.input).toMatchObject({ height: 16, width: 16, channels: 3, resize: 'stretch' });
    // Cropped to the boxes, every training pixel is the foreground colour (JPEG keeps it within a few levels).
    ds.input.mean.forEach((m, k) => {
      expect(Math.abs(m * 255 - FG[k]!)).toBeLessThan(4);
    });

    const batch = await ds.train.load([0]);
    expect(batch.shape).toEqual([1, 16, 16, 3]);
    // Crop to the box then stretch 20×10 → 16×16: x' = 0.8·x − 8, y' = 1.6·y − 8.
    const [back, beak, eye] = batch.parts![0]!;
    expect(back).toEqual({ part: 0, x: 8, y: 8, visible: true });
    expect(beak!.x).toBeCloseTo(1.6, 9);
    expect(beak!.y).toBeCloseTo(14.4, 9);
    expect(beak!.visible).toBe(true);
    // (35, 10) → (20, 8): outside the 16-pixel input, so it cannot be visible there.
    expect(eye).toMatchObject({ part: 2, visible: false });
    expect(eye!.x).toBeCloseTo(20, 9);
    expect(batch.boxes![0]).toEqual({ x0: 0, y0: 0, x1: 16, y1: 16 });
  });

  it('without the box crop, resizes the whole image and maps boxes and parts the same way', async () => {
    const dir = await writeCubFixture(IMAGES);
    const ds = await openDataset(`cub:${join(dir, 'CUB_200_2011')}?crop=none&size=20x15`);
    const batch = await ds.train.load([0]);
    expect(batch.shape).toEqual([1, 15, 20, 3]);
    // 40×30 → 20×15: everything halves.
    expect(batch.boxes![0]).toEqual({ x0: 5, y0: 2.5, x1: 15, y1: 7.5 });
    expect(batch.parts![0]!.map((p) => [p.x, p.y, p.visible])).toEqual([
      [10, 5, true],
      [6, 7, true],
      [17.5, 5, true],
    ]);
    // The pixel at (10, 5) is inside the box (foreground), (1, 12) outside (background), in normalised units.
    const px = (x: number, y: number) =>
      [0, 1, 2].map((k) => batch.x[(y * 20 + x) * 3 + k]! * ds.input.std[k]! + ds.input.mean[k]!);
    px(10, 5).forEach((v, k) => {
      expect(Math.abs(v * 255 - FG[k]!)).toBeLessThan(6);
    });
    px(1, 12).forEach((v, k) => {
      expect(Math.abs(v * 255 - BG[k]!)).toBeLessThan(6);
    });
  });

  it.each([
    [
      'a missing annotation file',
      'image_class_labels.txt',
      undefined,
      /image_class_labels.txt: cannot read \(ENOENT\)/,
    ],
    [
      'a bad split flag',
      'train_test_split.txt',
      '1 1\n2 yes\n',
      /train_test_split.txt: line 2: is_training_image "yes" is not 0 or 1/,
    ],
    [
      'a short line',
      'bounding_boxes.txt',
      '1 10 5 20\n',
      /bounding_boxes.txt: line 1: expected 5 fields, got 4 \("1 10 5 20"\)/,
    ],
    [
      'an unknown class',
      'image_class_labels.txt',
      '1 7\n',
      /image_class_labels.txt: line 1: class id 7 outside 1..3/,
    ],
    [
      'a non-numeric id',
      'images.txt',
      'x 001.Black_footed_Albatross/a.jpg\n',
      /images.txt: line 1: image id "x" is not an integer/,
    ],
    [
      'an unknown part',
      'parts/part_locs.txt',
      '1 9 1.0 1.0 1\n',
      /part_locs.txt: line 1: part id 9 outside 1..3/,
    ],
    [
      'an image without a label',
      'image_class_labels.txt',
      '1 1\n',
      /image_class_labels.txt: image id 2 \(images.txt line 2\) has no class label/,
    ],
  ])('refuses %s, naming the file and line', async (_what, name, text, message) => {
    const dir = await writeCubFixture(IMAGES, (n, t) => (n === name ? text : t));
    await expect(openDataset(`cub:${dir}`)).rejects.toThrow(message);
  });

  it('refuses a directory that is not CUB', async () => {
    await expect(openDataset('cub:/nonexistent/cub')).rejects.toThrow(
      /\/nonexistent\/cub: no such directory/,
    );
    await expect(openDataset('cub:/tmp')).rejects.toThrow(/not a CUB_200_2011 directory/);
  });

  it('names a missing or corrupt image; with skip-corrupt leaves it out of the batch and counts it', async () => {
    const images = [...IMAGES, image(1, false, { format: 'corrupt' })];
    const dir = await writeCubFixture(images);
    const missing = join(dir, 'CUB_200_2011', 'images', '002.Laysan_Albatross', 'Laysan_Albatross_0004.jpg');
    await rm(missing);
    await expect(openDataset(`cub:${dir}?size=16`)).rejects.toThrow(
      `${missing}: missing (listed in images.txt line 4; --skip-corrupt skips such files)`,
    );

    const ds = await openDataset(`cub:${dir}?size=16`, { skipCorrupt: true });
    expect(ds.test.size).toBe(4);
    const batch = await ds.test.load([0, 1, 2, 3]);
    expect(batch.shape[0]).toBe(2);
    expect([...batch.labels]).toEqual([0, 2]);
    expect(batch.parts).toHaveLength(2);
    expect(ds.test.skipped!.count).toBe(2);
    expect(ds.test.skipped!.files.map((f) => f.reason).join('\n')).toMatch(
      /cannot read image \(ENOENT\)[\s\S]*not a JPEG or PNG file/,
    );

    // Without the flag, a corrupt image fails the load that reaches it, with its name (a spec option wins over the flag).
    const strict = await openDataset(`cub:${await writeCubFixture(images)}?size=16&skip-corrupt=0`, {
      skipCorrupt: true,
    });
    await expect(strict.test.load([0, 1])).resolves.toMatchObject({ shape: [2, 16, 16, 3] });
    await expect(strict.test.load([3])).rejects.toThrow(/Laysan_Albatross_0007.jpg: not a JPEG or PNG file/);
  });
});
