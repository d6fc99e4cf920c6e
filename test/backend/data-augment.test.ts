// Augmentation moves part locations with the pixels, is seeded, and the identity leaves batches untouched;
// bounded read-ahead keeps at most `depth` loads in flight and yields in order.
import type { InputSpec } from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import { augmentBatch, NO_AUGMENT, offlineAugmented } from '../../gpu-backend/src/data/augment';
import type { Batch, Split } from '../../gpu-backend/src/data/dataset';
import { readAhead } from '../../gpu-backend/src/data/streaming';

const W = 16;
const H = 12;
const INPUT: InputSpec = {
  height: H,
  width: W,
  channels: 3,
  resize: 'stretch',
  mean: [0.5, 0.5, 0.5],
  std: [0.25, 0.25, 0.25],
};

/** A smooth image (so bilinear sampling near a point reads close to its value): channel k = x·(k+1)/W − y/H. */
function smooth(n: number): Batch {
  const x = new Float32Array(n * H * W * 3);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < H; y++)
      for (let i = 0; i < W; i++)
        for (let k = 0; k < 3; k++)
          x[((b * H + y) * W + i) * 3 + k] = ((i + 0.5) * (k + 1)) / W - (y + 0.5) / H;
  return {
    x,
    shape: [n, H, W, 3],
    labels: Int32Array.from({ length: n }, (_, i) => i),
    ids: Array.from({ length: n }, (_, i) => `img/${i}`),
    parts: Array.from({ length: n }, () => [
      { part: 0, x: 5.5, y: 4.5, visible: true },
      { part: 1, x: 10, y: 7, visible: true },
    ]),
    boxes: Array.from({ length: n }, () => ({ x0: 4, y0: 3, x1: 12, y1: 9 })),
  };
}

const value = (b: Batch, n: number, x: number, y: number, k: number) => {
  // Bilinear read at a continuous point (pixel centres at +0.5), for checking part locations.
  const sx = x - 0.5;
  const sy = y - 0.5;
  const x0 = Math.floor(sx);
  const y0 = Math.floor(sy);
  const at = (i: number, j: number) => b.x[((n * H + j) * W + i) * 3 + k]!;
  const fx = sx - x0;
  const fy = sy - y0;
  return (
    (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) +
    (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy
  );
};

describe('augmentation', () => {
  it('with every option off returns the same pixels, parts and boxes', () => {
    const b = smooth(2);
    const a = augmentBatch(b, INPUT, 1, NO_AUGMENT);
    expect([...a.x]).toEqual([...b.x]);
    expect(a.parts).toEqual(b.parts);
    expect(a.boxes).toEqual(b.boxes);
  });

  it('flips pixels and parts together: x → W − x', () => {
    const b = smooth(1);
    const a = augmentBatch(b, INPUT, 1, { ...NO_AUGMENT, flip: 1 });
    for (let y = 0; y < H; y++)
      for (let i = 0; i < W; i++) expect(a.x[(y * W + i) * 3]).toBe(b.x[(y * W + (W - 1 - i)) * 3]);
    expect(a.parts![0]![0]).toEqual({ part: 0, x: W - 5.5, y: 4.5, visible: true });
    expect(a.boxes![0]).toEqual({ x0: 4, y0: 3, x1: 12, y1: 9 });
  });

  it('moves parts to where their pixels went under rotation, shear, zoom and shift; is seeded', () => {
    const b = smooth(8);
    const geo = { brightness: 0, contrast: 0, saturation: 0 };
    const a = augmentBatch(b, INPUT, 42, geo);
    for (let n = 0; n < 8; n++) {
      for (const [j, p] of a.parts![n]!.entries()) {
        const q = b.parts![n]![j]!;
        if (p.x < 1 || p.y < 1 || p.x > W - 1 || p.y > H - 1) continue;
        for (let k = 0; k < 3; k++)
          expect(Math.abs(value(a, n, p.x, p.y, k) - value(b, n, q.x, q.y, k))).toBeLessThan(1e-4);
      }
    }
    expect([...augmentBatch(b, INPUT, 42, geo).x]).toEqual([...a.x]);
    expect([...augmentBatch(b, INPUT, 43, geo).x]).not.toEqual([...a.x]);
  });

  it('jitters colour within the pixel range', () => {
    const b = smooth(4);
    const a = augmentBatch(b, INPUT, 7, { ...NO_AUGMENT, brightness: 0.5, contrast: 0.5, saturation: 0.5 });
    expect([...a.x]).not.toEqual([...b.x]);
    for (const v of a.x) {
      expect(v * 0.25 + 0.5).toBeGreaterThanOrEqual(-1e-6);
      expect(v * 0.25 + 0.5).toBeLessThanOrEqual(1 + 1e-6);
    }
  });

  it('offline ×30: n·30 images, each augmentation fixed by its index, whatever batch it is loaded in', async () => {
    const base = smooth(3);
    const split: Split = {
      size: 3,
      labels: Int32Array.from([0, 1, 2]),
      id: (i) => `img/${i}`,
      load: async (indices) => {
        const per = H * W * 3;
        const x = new Float32Array(indices.length * per);
        indices.forEach((i, b) => {
          x.set(base.x.subarray(i * per, (i + 1) * per), b * per);
        });
        return {
          x,
          shape: [indices.length, H, W, 3],
          labels: Int32Array.from(indices),
          ids: indices.map((i) => `img/${i}`),
          parts: indices.map((i) => base.parts![i]!),
        };
      },
    };
    const aug = offlineAugmented(split, INPUT, 9);
    expect(aug.size).toBe(90);
    expect(aug.id(4)).toBe('img/1#aug1');
    expect(aug.labels[4]).toBe(1);
    const one = await aug.load([4]);
    const many = await aug.load([0, 4, 89]);
    expect([...many.x.subarray(H * W * 3, 2 * H * W * 3)]).toEqual([...one.x]);
    expect(many.parts![1]).toEqual(one.parts![0]);
    expect(many.ids).toEqual(['img/0#aug0', 'img/1#aug1', 'img/2#aug29']);
  });
});

describe('read-ahead', () => {
  it('keeps at most depth loads in flight, yields in order, and applies the transform', async () => {
    let inFlight = 0;
    let most = 0;
    const split: Split = {
      size: 100,
      labels: new Int32Array(100),
      id: (i) => String(i),
      load: async (indices) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        return {
          x: new Float32Array(0),
          shape: [indices.length, 1, 1, 0],
          labels: Int32Array.from(indices),
          ids: indices.map(String),
        };
      },
    };
    const batches = Array.from({ length: 10 }, (_, i) => [i * 2, i * 2 + 1]);
    const seen: string[][] = [];
    for await (const b of readAhead(split, batches, {
      depth: 3,
      transform: (b, pos) => ({ ...b, ids: [...b.ids, `#${pos}`] }),
    })) {
      seen.push(b.ids);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toEqual(batches.map((b, i) => [...b.map(String), `#${i}`]));
    expect(most).toBe(3);
  });

  it('raises a load error when its batch is reached, after the earlier ones', async () => {
    const split: Split = {
      size: 4,
      labels: new Int32Array(4),
      id: String,
      load: async (indices) => {
        if (indices[0] === 2) throw new Error('disk on fire');
        return {
          x: new Float32Array(0),
          shape: [1, 1, 1, 0],
          labels: Int32Array.from(indices),
          ids: indices.map(String),
        };
      },
    };
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const b of readAhead(split, [[0], [1], [2], [3]], { depth: 4 })) got.push(b.ids[0]!);
      })(),
    ).rejects.toThrow('disk on fire');
    expect(got).toEqual(['0', '1']);
  });
});
