// Decoding off the training thread: the pool's images equal inline decoding bit for bit, and its errors
// name the file just as inline decoding does (so --skip-corrupt works the same).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodePool } from '../../gpu-backend/src/data/decode-pool';
import { DataError } from '../../gpu-backend/src/data/errors';
import { fitImage } from '../../gpu-backend/src/data/image';
import { readImage } from '../../gpu-backend/src/data/image-node';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { type CubImage, writeCubFixture } from '../helpers/cub-fixture';
import { jpeg, png } from '../helpers/image-files';

const pool = new DecodePool(2);
afterAll(() => pool.close());

const gradient = (w: number, h: number, c: number) =>
  Array.from({ length: w * h * c }, (_, i) => (i * 37 + Math.floor(i / c) * 11) % 256);

describe('decode pool', () => {
  it('fits PNG and JPEG files exactly as inline decoding does, with and without a box', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-decode-'));
    const files = {
      'a.png': png('rgba', 30, 20, gradient(30, 20, 4)),
      'b.png': png('grey', 17, 23, gradient(17, 23, 1)),
      'c.jpg': await jpeg(40, 32, gradient(40, 32, 3), 90),
    };
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
    for (const name of Object.keys(files)) {
      for (const [resize, box] of [
        ['crop', undefined],
        ['letterbox', { x0: 3, y0: 2, x1: 14, y1: 11 }],
        ['stretch', undefined],
      ] as const) {
        const file = join(dir, name);
        const job = { file, channels: 3 as const, width: 16, height: 12, resize, box };
        const inline = fitImage(await readImage(file, 3), job, resize, box);
        const pooled = await pool.fit(job);
        expect(pooled.placement).toEqual(inline.placement);
        expect(Buffer.from(pooled.data.buffer)).toEqual(Buffer.from(inline.data.buffer));
      }
    }
  });

  it('answers a corrupt or missing file with a DataError naming it, and keeps working', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-decode-bad-'));
    const bad = join(dir, 'bad.png');
    await writeFile(bad, Buffer.from('not a png at all'));
    const job = (file: string) => ({
      file,
      channels: 3 as const,
      width: 8,
      height: 8,
      resize: 'crop' as const,
    });
    const corrupt = await pool.fit(job(bad)).catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(DataError);
    expect((corrupt as DataError).file).toBe(bad);
    expect((corrupt as Error).message).toMatch(new RegExp(`^${bad}: `));
    await expect(pool.fit(job(join(dir, 'missing.jpg')))).rejects.toThrow(
      /missing\.jpg: cannot read image \(ENOENT\)/,
    );
    await writeFile(join(dir, 'ok.png'), png('rgb', 4, 4, gradient(4, 4, 3)));
    expect((await pool.fit(job(join(dir, 'ok.png')))).data).toHaveLength(8 * 8 * 3);
  });

  it('gives a CUB split the same batches, boxes and parts with decode-workers=2 as inline', async () => {
    const img = (cls: number, train: boolean): CubImage => ({
      cls,
      train,
      width: 40,
      height: 32,
      background: [20, 20, 200],
      foreground: [220, 200, 10],
      box: { x: 8, y: 6, w: 20, h: 16 },
      parts: [
        [16, 16, 1],
        [10, 10, 1],
        [0, 0, 0],
      ],
    });
    const dir = await writeCubFixture([img(0, true), img(1, true), img(2, true), img(0, false)]);
    const inline = await openDataset(`cub:${dir}?size=16&decode-workers=0&cache=0`);
    const pooled = await openDataset(`cub:${dir}?size=16&decode-workers=2&cache=0`);
    const [a, b] = [await inline.train.load([0, 1, 2]), await pooled.train.load([0, 1, 2])];
    expect(b.labels).toEqual(a.labels);
    expect(b.parts).toEqual(a.parts);
    expect(b.boxes).toEqual(a.boxes);
    expect(Buffer.from(b.x.buffer)).toEqual(Buffer.from(a.x.buffer));
  });
});
