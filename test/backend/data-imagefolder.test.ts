// ImageFolder loader: train/ + test/ class directories, or one class tree split by a seeded test fraction.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { flat, jpeg, png } from '../helpers/image-files';

async function tree(files: Record<string, Buffer | string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'folder-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

const red = () => png('rgb', 4, 2, flat(4, 2, [255, 0, 0]));
const grey = () => png('grey', 4, 2, [0, 0, 0, 0, 255, 255, 255, 255]);

describe('ImageFolder loader', () => {
  it('reads train/ and test/ class directories (sorted), ignoring non-images', async () => {
    const dir = await tree({
      'train/cat/a.png': red(),
      'train/cat/b.PNG': red(),
      'train/dog/c.jpg': await jpeg(8, 8, flat(8, 8, [0, 0, 255])),
      'train/dog/notes.txt': 'not an image',
      'test/dog/d.png': grey(),
      'test/cat/.DS_Store': 'x',
    });
    const ds = await openDataset(`imagefolder:${dir}?size=4x2&resize=stretch`);
    expect(ds.classes).toEqual(['cat', 'dog']);
    expect([...ds.train.labels]).toEqual([0, 0, 1]);
    expect(ds.train.id(2)).toBe('train/dog/c.jpg');
    expect([...ds.test.labels]).toEqual([1]);
    expect(ds.description).toContain('1 non-image entries ignored');
    // Mean over the training pixels: two red images and one blue → R 2/3, G 0, B 1/3.
    expect(ds.input.mean[0]).toBeCloseTo(2 / 3, 2);
    expect(ds.input.mean[2]).toBeCloseTo(1 / 3, 2);
    const b = await ds.test.load([0]);
    expect(b.shape).toEqual([1, 2, 4, 3]);
    expect(b.parts).toBeUndefined();
  });

  it('reads grey images when channels=1 and crops the centre by default', async () => {
    const dir = await tree({ 'train/a/1.png': grey(), 'train/b/2.png': red(), 'test/a/3.png': grey() });
    const ds = await openDataset(`imagefolder:${dir}?size=2&channels=1`);
    expect(ds.input).toMatchObject({ channels: 1, resize: 'crop', width: 2, height: 2 });
    const b = await ds.test.load([0]);
    // The 4×2 grey image cropped to its centre 2×2: rows 0 and 255.
    const px = [...b.x].map((v) => Math.round((v * ds.input.std[0]! + ds.input.mean[0]!) * 255));
    expect(px).toEqual([0, 0, 255, 255]);
  });

  it('splits one class tree by a seeded, stratified test fraction', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 10; i++) {
      files[`x/${i}.png`] = red();
      files[`y/${i}.png`] = grey();
    }
    const dir = await tree(files);
    const a = await openDataset(`imagefolder:${dir}?split=0.3&seed=4&size=4`);
    expect([a.train.size, a.test.size]).toEqual([14, 6]);
    expect([...a.test.labels].filter((l) => l === 0)).toHaveLength(3);
    const b = await openDataset(`imagefolder:${dir}?split=0.3&seed=4&size=4`);
    const c = await openDataset(`imagefolder:${dir}?split=0.3&seed=5&size=4`);
    const ids = (d: typeof a) => Array.from({ length: d.test.size }, (_, i) => d.test.id(i));
    expect(ids(b)).toEqual(ids(a));
    expect(ids(c)).not.toEqual(ids(a));
    expect(a.test.id(0)).toMatch(/^x\/\d\.png$/);
  });

  it('refuses layouts it cannot use, naming the path', async () => {
    await expect(openDataset('imagefolder:/nonexistent/x')).rejects.toThrow(
      '/nonexistent/x: no such directory',
    );
    const noTest = await tree({ 'train/a/1.png': red(), 'train/b/1.png': red() });
    await expect(openDataset(`imagefolder:${noTest}`)).rejects.toThrow(
      /test: missing: train\/ needs a test\/ beside it/,
    );
    const extra = await tree({ 'train/a/1.png': red(), 'train/b/1.png': red(), 'test/c/1.png': red() });
    await expect(openDataset(`imagefolder:${extra}`)).rejects.toThrow(
      /test\/c: class directory has no counterpart in train\//,
    );
    const one = await tree({ 'train/a/1.png': red(), 'test/a/1.png': red() });
    await expect(openDataset(`imagefolder:${one}`)).rejects.toThrow(/1 class directories, need at least 2/);
    const empty = await tree({ 'train/a/1.png': red(), 'train/b/x.txt': 'x', 'test/a/1.png': red() });
    await expect(openDataset(`imagefolder:${empty}`)).rejects.toThrow(
      /train\/b: class has no training images/,
    );
  });
});
