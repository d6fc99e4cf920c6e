// Image maths: bilinear fit by hand (stretch, crop, letterbox, box crop), decoding of every PNG colour type and
// JPEG, corrupt files named, normalisation statistics.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ChannelStats,
  decodeImage,
  fitImage,
  normalise,
  type Pixels,
  placement,
  placePoint,
  toGrey,
} from '../../gpu-backend/src/data/image';
import { initImageCodecs, readImage } from '../../gpu-backend/src/data/image-node';
import { flat, jpeg, png } from '../helpers/image-files';

const grey = (width: number, height: number, data: number[]): Pixels => ({
  width,
  height,
  channels: 1,
  data: Uint8Array.from(data),
});

describe('bilinear fit', () => {
  it('upsamples 2×2 to 4×4 with half-pixel centres, as computed by hand', () => {
    // Output x samples source x = (x + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1):
    // row [0, 100] → [0, 25, 75, 100]; row [200, 240] → [200, 210, 230, 240]; rows mix 1, ¾:¼, ¼:¾, 1 likewise.
    const { data } = fitImage(grey(2, 2, [0, 100, 200, 240]), { width: 4, height: 4 }, 'stretch');
    expect([...data]).toEqual([
      0, 25, 75, 100, 50, 71.25, 113.75, 135, 150, 163.75, 191.25, 205, 200, 210, 230, 240,
    ]);
  });

  it('is the identity at the same size, and averages pairs when halving', () => {
    const src = grey(4, 2, [10, 20, 30, 40, 50, 60, 70, 80]);
    expect([...fitImage(src, { width: 4, height: 2 }, 'stretch').data]).toEqual([
      10, 20, 30, 40, 50, 60, 70, 80,
    ]);
    // 4×2 → 2×1: source x = 2·(x + 0.5) − 0.5 = 0.5, 2.5; y = 0.5: means of 2×2 blocks.
    expect([...fitImage(src, { width: 2, height: 1 }, 'stretch').data]).toEqual([35, 55]);
  });

  it('crop keeps the centre, letterbox pads, both keep the aspect ratio', () => {
    const src = grey(4, 2, [10, 20, 30, 40, 50, 60, 70, 80]);
    // crop to 2×2: scale max(2/4, 2/2) = 1, offset x (2 − 4)/2 = −1 → source columns 1 and 2.
    expect([...fitImage(src, { width: 2, height: 2 }, 'crop').data]).toEqual([20, 30, 60, 70]);
    // letterbox to 4×4: scale min(1, 2) = 1, offset y = 1: a band of fill above and below.
    const lb = fitImage(src, { width: 4, height: 4 }, 'letterbox');
    expect([...lb.data]).toEqual([0, 0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 0, 0, 0, 0]);
    expect(lb.placement.content).toEqual({ x0: 0, y0: 1, x1: 4, y1: 3 });
  });

  it('maps a box and a point inside it through crop-to-box and stretch', () => {
    // Box x 10..30, y 5..15 of a 40×30 image, to 16×16: scale 0.8 × 1.6, offset −10·0.8 = −8, −5·1.6 = −8.
    const p = placement({ x0: 10, y0: 5, x1: 30, y1: 15 }, 16, 16, 'stretch');
    expect(p).toMatchObject({ scaleX: 0.8, scaleY: 1.6, offsetX: -8, offsetY: -8 });
    expect(placePoint(p, 20, 10)).toEqual({ x: 8, y: 8 });
    expect(placePoint(p, 12, 14)).toEqual({ x: 1.6000000000000014, y: 14.400000000000002 });
  });

  it('samples only the box when cropping to it (no bleeding from outside)', () => {
    // 4×1: [0, 100, 200, 255]; box covers pixels 1..2; stretched to 4 wide the edges clamp to 100 and 200.
    const src = grey(4, 1, [0, 100, 200, 255]);
    const { data } = fitImage(src, { width: 4, height: 1 }, 'stretch', { x0: 1, y0: 0, x1: 3, y1: 1 });
    expect([...data]).toEqual([100, 125, 175, 200]);
  });
});

describe('decoding', () => {
  const rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];

  it.each([
    ['grey', [0, 85, 170, 255], [0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]],
    ['rgb', rgb, rgb],
    ['rgba', [255, 0, 0, 9, 0, 255, 0, 0, 0, 0, 255, 255, 10, 20, 30, 128], rgb],
    ['palette', rgb, rgb],
  ] as const)('reads a %s PNG as RGB (alpha dropped)', async (kind, pixels, expected) => {
    const p = await decodeImage(png(kind, 2, 2, pixels));
    expect(p).toMatchObject({ width: 2, height: 2, channels: 3 });
    expect([...p.data]).toEqual(expected);
  });

  it('converts to grey with the 601 luma weights, rounded', async () => {
    const p = toGrey({ width: 4, height: 1, channels: 3, data: Uint8Array.from(rgb) });
    // 0.299·255 = 76.245 → 76; 0.587·255 = 149.685 → 150; 0.114·255 = 29.07 → 29; 2.99 + 11.74 + 3.42 = 18.15 → 18.
    expect([...p.data]).toEqual([76, 150, 29, 18]);
  });

  it('decodes JPEG (colour and flat) within a few levels', async () => {
    await initImageCodecs();
    const p = await decodeImage(await jpeg(16, 8, flat(16, 8, [200, 40, 90])));
    expect(p).toMatchObject({ width: 16, height: 8, channels: 3 });
    for (let i = 0; i < 16 * 8; i++) {
      expect(Math.abs(p.data[3 * i]! - 200)).toBeLessThanOrEqual(3);
      expect(Math.abs(p.data[3 * i + 1]! - 40)).toBeLessThanOrEqual(3);
      expect(Math.abs(p.data[3 * i + 2]! - 90)).toBeLessThanOrEqual(3);
    }
  });

  it('refuses corrupt and unsupported files with an error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'img-'));
    const good = await jpeg(16, 16, flat(16, 16, [1, 2, 3]));
    const cases: [string, Buffer, RegExp][] = [
      ['text.jpg', Buffer.from('hello'), /not a JPEG or PNG file \(starts with 68 65 6c 6c\)/],
      ['empty.png', Buffer.alloc(0), /not a JPEG or PNG file \(starts with nothing\)/],
      ['cut.jpg', good.subarray(0, 30), /corrupt JPEG \(/],
      ['cut.png', png('rgb', 2, 2, rgb).subarray(0, 40), /corrupt PNG/],
      ['pic.gif', Buffer.from('GIF89a......'), /not a JPEG or PNG file/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(dir, name);
      await writeFile(file, bytes);
      await expect(readImage(file)).rejects.toThrow(message);
      await expect(readImage(file)).rejects.toThrow(`${file}: `);
    }
    await expect(readImage(join(dir, 'absent.jpg'))).rejects.toThrow(
      /absent.jpg: cannot read image \(ENOENT\)/,
    );
    // The decoder still works after refusing files.
    await writeFile(join(dir, 'ok.jpg'), good);
    expect((await readImage(join(dir, 'ok.jpg'))).width).toBe(16);
  });
});

describe('normalisation', () => {
  it('computes per-channel mean/std over pixels and normalises with them', () => {
    const stats = new ChannelStats(2);
    // Channel 0: 0, 255 → mean 0.5, std 0.5; channel 1: 51, 51 → mean 0.2, std 0 → floored at 1e-3.
    stats.add(Float32Array.from([0, 51, 255, 51]));
    const { mean, std } = stats.result();
    expect(mean[0]).toBeCloseTo(0.5, 6);
    expect(mean[1]).toBeCloseTo(0.2, 6);
    expect(std[0]).toBeCloseTo(0.5, 6);
    expect(std[1]).toBe(1e-3);
    const out = normalise(Float32Array.from([255, 102]), [0.5, 0.2], [0.5, 0.1]);
    expect(out[0]).toBeCloseTo(1, 6);
    expect(out[1]).toBeCloseTo(2, 5);
  });
});
