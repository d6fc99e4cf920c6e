// Fashion-MNIST from IDX files: the embedded subset reads back exactly; malformed files are named with their field.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { epochBatches, limitSplit } from '../../gpu-backend/src/data/dataset';
import { openFashionMnist } from '../../gpu-backend/src/data/fashion-mnist';
import { readIdx } from '../../gpu-backend/src/data/idx';
import { openDataset } from '../../gpu-backend/src/data/specs';

function idx(rankDims: number[], data: number[]): Buffer {
  const header = Buffer.alloc(4 + 4 * rankDims.length);
  header.writeUInt8(0x08, 2);
  header.writeUInt8(rankDims.length, 3);
  rankDims.forEach((d, i) => {
    header.writeUInt32BE(d, 4 + 4 * i);
  });
  return Buffer.concat([header, Buffer.from(data)]);
}

async function fixture(files: Record<string, Buffer>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'idx-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

describe('IDX reader', () => {
  it('reads a hand-written gzip image file and normalises as the manifest says', async () => {
    // Two 2×2 images; labels 3 and 9.
    const dir = await fixture({
      'train-images-idx3-ubyte.gz': gzipSync(idx([2, 2, 2], [0, 255, 255, 0, 51, 51, 51, 51])),
      'train-labels-idx1-ubyte.gz': gzipSync(idx([2], [3, 9])),
      't10k-images-idx3-ubyte': idx([1, 2, 2], [0, 0, 0, 0]),
      't10k-labels-idx1-ubyte': idx([1], [0]),
    });
    const ds = await openFashionMnist(dir);
    // Training pixels in [0,1]: 0,1,1,0,.2,.2,.2,.2 → mean 0.35; mean of squares (1 + 1 + 4·0.04)/8 = 0.27, so std = sqrt(0.27 − 0.35²) = sqrt(0.1475).
    expect(ds.input.mean[0]).toBeCloseTo(0.35, 6);
    expect(ds.input.std[0]).toBeCloseTo(Math.sqrt(0.1475), 6);
    const batch = await ds.train.load([1, 0]);
    expect(batch.shape).toEqual([2, 2, 2, 1]);
    expect([...batch.labels]).toEqual([9, 3]);
    expect(batch.ids).toEqual(['train/1', 'train/0']);
    expect(batch.x[0]).toBeCloseTo((0.2 - 0.35) / Math.sqrt(0.1475), 5);
    expect(batch.x[5]).toBeCloseTo((1 - 0.35) / Math.sqrt(0.1475), 5);
    expect(ds.test.size).toBe(1);
  });

  it.each([
    ['wrong type byte', idx([1, 1, 1], [0]).fill(0x0d, 2, 3), /header.type: 0xd is not unsigned byte/],
    ['wrong rank', idx([1, 1], [0]), /header.rank: 2, expected 3/],
    ['short data', idx([2, 2, 2], [1, 2, 3]), /data: dims \[2, 2, 2\] need 8 bytes, file has 3/],
    ['truncated header', Buffer.from([0, 0, 8]), /header: truncated/],
    ['corrupt gzip', Buffer.from([0x1f, 0x8b, 1, 2, 3]), /corrupt gzip data/],
  ])('refuses a file with %s, naming the file', async (_name, content, message) => {
    const dir = await fixture({ 'bad-images': content });
    const file = join(dir, 'bad-images');
    await expect(readIdx(file, 3)).rejects.toThrow(message);
    await expect(readIdx(file, 3)).rejects.toThrow(file);
  });

  it('refuses labels outside 0..9 and label/image count mismatches', async () => {
    const images = idx([2, 1, 1], [0, 1]);
    const test = { 't10k-images-idx3-ubyte': idx([1, 1, 1], [0]), 't10k-labels-idx1-ubyte': idx([1], [0]) };
    const bad = await fixture({
      'train-images-idx3-ubyte': images,
      'train-labels-idx1-ubyte': idx([2], [1, 12]),
      ...test,
    });
    await expect(openFashionMnist(bad)).rejects.toThrow(/data\[1\]: label 12 is not a class 0..9/);
    const short = await fixture({
      'train-images-idx3-ubyte': images,
      'train-labels-idx1-ubyte': idx([1], [1]),
      ...test,
    });
    await expect(openFashionMnist(short)).rejects.toThrow(/1 labels for 2 images/);
  });
});

describe('embedded Fashion-MNIST subset', () => {
  it('holds 10,000 training and 2,000 test images of 28×28 in 10 balanced classes', async () => {
    const ds = await openDataset('fashion-mnist:embedded');
    expect(ds.train.size).toBe(10_000);
    expect(ds.test.size).toBe(2_000);
    expect(ds.input).toMatchObject({ height: 28, width: 28, channels: 1 });
    const counts = new Array(10).fill(0);
    for (const l of ds.train.labels) counts[l]++;
    expect(Math.min(...counts)).toBeGreaterThan(900);
    // Fashion-MNIST's published pixel mean is 0.2860 over 60k images; the subset is within a percent.
    expect(ds.input.mean[0]).toBeCloseTo(0.286, 2);
  });

  it('batches an epoch in a seeded order that covers every image once', () => {
    const a = epochBatches(10, 4, 7);
    expect(a.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(a.flat().sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    expect(epochBatches(10, 4, 7)).toEqual(a);
    expect(epochBatches(10, 4, 8)).not.toEqual(a);
  });

  it('limits a split to its first n images', async () => {
    const ds = await openDataset('fashion-mnist:embedded');
    const small = limitSplit(ds.train, 5);
    expect(small.size).toBe(5);
    expect([...small.labels]).toEqual([...ds.train.labels.subarray(0, 5)]);
  });

  it('refuses unknown specs with the list of known ones', async () => {
    await expect(openDataset('mnist')).rejects.toThrow(
      /unknown data spec "mnist": expected one of fashion-mnist/,
    );
  });
});
