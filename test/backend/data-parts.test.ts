// The generated parts dataset: deterministic CUB-layout files whose ground-truth part locations hold the parts.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCub } from '../../gpu-backend/src/data/cub';
import {
  COLOURS,
  ensurePartsDataset,
  type PartsOptions,
  partsClasses,
} from '../../gpu-backend/src/data/parts';
import { openDataset } from '../../gpu-backend/src/data/specs';

const SMALL: PartsOptions = { seed: 3, size: 32, classes: 6, trainPerClass: 3, testPerClass: 2 };

describe('parts dataset', () => {
  it('is the same, byte for byte, from the same seed, and differs for another seed', async () => {
    const a = await ensurePartsDataset(SMALL, await mkdtemp(join(tmpdir(), 'parts-a-')));
    const b = await ensurePartsDataset(SMALL, await mkdtemp(join(tmpdir(), 'parts-b-')));
    const c = await ensurePartsDataset({ ...SMALL, seed: 4 }, await mkdtemp(join(tmpdir(), 'parts-c-')));
    for (const f of ['images.txt', 'parts/part_locs.txt', 'bounding_boxes.txt', 'classes.txt']) {
      expect(await readFile(join(b, f), 'utf8')).toBe(await readFile(join(a, f), 'utf8'));
    }
    const first = (await readFile(join(a, 'images.txt'), 'utf8')).split('\n')[0]!.split(' ')[1]!;
    expect(await readFile(join(b, 'images', first))).toEqual(await readFile(join(a, 'images', first)));
    expect(await readFile(join(c, 'parts/part_locs.txt'), 'utf8')).not.toBe(
      await readFile(join(a, 'parts/part_locs.txt'), 'utf8'),
    );
  });

  it('has classes that differ at two or more positions and share markers', () => {
    const classes = partsClasses({ ...SMALL, classes: 15 });
    const key = (m: { shape: string; colour: string }) => `${m.shape}/${m.colour}`;
    for (let i = 0; i < classes.length; i++) {
      for (let j = 0; j < i; j++) {
        expect(classes[i]!.filter((m, p) => key(m) !== key(classes[j]![p]!)).length).toBeGreaterThanOrEqual(
          2,
        );
      }
    }
    // 15 classes, 4 options per position: some marker at some position is used by several classes.
    const uses = new Map<string, number>();
    for (const c of classes)
      c.forEach((m, p) => {
        uses.set(`${p}:${key(m)}`, (uses.get(`${p}:${key(m)}`) ?? 0) + 1);
      });
    expect(Math.max(...uses.values())).toBeGreaterThanOrEqual(3);
    // A marker belongs to one position (a semantic part): no marker appears at two positions.
    const positions = new Map<string, Set<number>>();
    for (const c of classes) {
      c.forEach((m, p) => {
        positions.set(key(m), (positions.get(key(m)) ?? new Set()).add(p));
      });
    }
    for (const at of positions.values()) expect(at.size).toBe(1);
  });

  it('is read by the CUB loader, and every visible ground-truth part sits on its marker colour', async () => {
    const root = await ensurePartsDataset(SMALL, await mkdtemp(join(tmpdir(), 'parts-d-')));
    const ds = await openCub(root, {
      width: 32,
      height: 32,
      channels: 3,
      resize: 'stretch',
      crop: 'none',
      skipCorrupt: false,
      cacheBytes: 0,
      concurrency: 4,
      statsSample: 100,
    });
    expect([ds.train.size, ds.test.size]).toEqual([18, 12]);
    // Classes are interleaved in id order, so a first-n limit covers all of them.
    expect([...ds.train.labels.subarray(0, 6)]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ds.train.partNames).toEqual(['top marker', 'right marker', 'bottom marker', 'left marker']);
    const markers = partsClasses(SMALL);
    const batch = await ds.train.load([...Array(18).keys()]);
    let visible = 0;
    batch.parts!.forEach((parts, b) => {
      expect(parts).toHaveLength(4);
      for (const p of parts) {
        if (!p.visible) continue;
        visible++;
        const o = ((b * 32 + Math.floor(p.y)) * 32 + Math.floor(p.x)) * 3;
        const rgb = [0, 1, 2].map((k) =>
          Math.round((batch.x[o + k]! * ds.input.std[k]! + ds.input.mean[k]!) * 255),
        );
        expect(rgb).toEqual([...COLOURS[markers[batch.labels[b]!]![p.part]!.colour]]);
      }
    });
    expect(visible).toBeGreaterThan(18 * 4 * 0.8);
  });

  it('opens through its data spec with sizes from the options', async () => {
    const ds = await openDataset('parts:3?size=32&classes=6&train=3&test=2');
    expect(ds.classes).toHaveLength(6);
    expect(ds.input).toMatchObject({ height: 32, width: 32, channels: 3 });
    expect(ds.description).toMatch(/^parts \(generated, seed 3, 6 classes\)/);
    await expect(openDataset('parts:x')).rejects.toThrow(/seed "x" is not an integer/);
    await expect(openDataset('parts?size=32x16')).rejects.toThrow(/parts images are square/);
  });
});
