// Fuzzing what the backend reads from bytes and files: the image decoders (@protopool/shared/image and
// image-node), the dataset loaders (IDX / fashion-mnist, CUB, Stanford Cars, ImageFolder, data specs) and the
// checkpoint loader. Every input ends in a value or an Error with a clear message (never a TypeError /
// RangeError from deep inside, never a hang), and the checkpoint loader leaks no tfjs tensor.
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decodeImage, ImageDecodeError, imageToInput, MAX_INPUT_PIXELS } from '@protopool/shared/image';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { readIdx } from '../../gpu-backend/src/data/idx';
import { initImageCodecs, readImage } from '../../gpu-backend/src/data/image-node';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { initEngine } from '../../gpu-backend/src/engine';
import { writeDirAtomic } from '../../gpu-backend/src/io/files';
import { latestCheckpoint, loadCheckpoint } from '../../gpu-backend/src/train/checkpoint';
import { trainTinyModel } from '../helpers/backend-process';
import { writeCarsFixture } from '../helpers/cars-fixture';
import { writeCubFixture } from '../helpers/cub-fixture';
import { fuzzParams, fuzzTimeout, mutatedBytes, within } from '../helpers/fuzz';
import { jpeg, png } from '../helpers/image-files';

const INPUT = {
  height: 28,
  width: 28,
  channels: 1 as const,
  resize: 'crop' as const,
  mean: [0.3],
  std: [0.3],
};

/** A clear refusal: an Error with a message that is not a JS engine fault from deep inside a parser. */
function expectClear(err: unknown, context: string): void {
  expect(err, context).toBeInstanceOf(Error);
  const e = err as Error;
  expect(e.message.length, context).toBeGreaterThan(0);
  const internal = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError;
  expect(internal, `${context}: unclear ${e.name}: ${e.message}`).toBe(false);
}

async function outcome<T>(what: string, f: () => Promise<T>, ms = 5_000): Promise<T | undefined> {
  try {
    return await within(ms, what, f());
  } catch (err) {
    if ((err as Error).message.includes('(hang)')) throw err;
    expectClear(err, what);
    return undefined;
  }
}

/** A JSON document with one leaf (or one whole subtree) replaced by an arbitrary value. */
function mutatedJson(text: () => string) {
  return fc.tuple(fc.nat(), fc.jsonValue({ maxDepth: 2 }), fc.boolean()).map(([pick, value, drop]) => {
    const doc = JSON.parse(text()) as unknown;
    const slots: { parent: Record<string, unknown>; key: string }[] = [];
    const walk = (v: unknown) => {
      if (v && typeof v === 'object')
        for (const [k, child] of Object.entries(v)) {
          slots.push({ parent: v as Record<string, unknown>, key: k });
          walk(child);
        }
    };
    walk(doc);
    const slot = slots[pick % slots.length]!;
    if (drop && !Array.isArray(slot.parent)) delete slot.parent[slot.key];
    else slot.parent[slot.key] = value;
    return JSON.stringify(doc);
  });
}

const rgb = Array.from({ length: 20 * 16 * 3 }, (_, i) => (i * 29 + (i >> 5)) % 256);
let images: Record<string, Uint8Array>;
let scratch: string;

beforeAll(async () => {
  await initEngine('wasm');
  await initImageCodecs();
  scratch = await mkdtemp(join(tmpdir(), 'pp-fuzz-files-'));
  images = {
    grey: new Uint8Array(
      png(
        'grey',
        20,
        16,
        rgb.filter((_, i) => i % 3 === 0),
      ),
    ),
    rgb: new Uint8Array(png('rgb', 20, 16, rgb)),
    rgba: new Uint8Array(png('rgba', 10, 8, rgb.slice(0, 320))),
    palette: new Uint8Array(
      png(
        'palette',
        20,
        16,
        rgb.map((v) => v & 0xc0),
      ),
    ),
    jpeg: new Uint8Array(await jpeg(20, 16, rgb, 85)),
  };
});

describe('image decoders', () => {
  const anyImage = () =>
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => new Uint8Array([0x89, 0x50, 0x4e, 0x47, ...b])),
      fc.uint8Array({ maxLength: 200 }).map((b) => new Uint8Array([0xff, 0xd8, 0xff, ...b])),
      fc
        .constantFrom('grey', 'rgb', 'rgba', 'palette', 'jpeg')
        .chain((k) => mutatedBytes(() => images[k]!, 8)),
    );

  it(
    'decodeImage and imageToInput return consistent pixels or an ImageDecodeError, for any bytes',
    async () => {
      await fc.assert(
        fc.asyncProperty(anyImage(), fc.constantFrom(1 as const, 3 as const), async (bytes, channels) => {
          const t0 = performance.now();
          try {
            // The API's size limit: within it a decode costs well under a second (datasets allow 8192², seconds).
            const p = await within(5_000, 'decodeImage', decodeImage(bytes, channels, MAX_INPUT_PIXELS));
            expect(p.data.length).toBe(p.width * p.height * channels);
            const x = await imageToInput(bytes, INPUT);
            expect(x.length).toBe(28 * 28);
            expect(x.every(Number.isFinite)).toBe(true);
          } catch (err) {
            expect(err, String(err)).toBeInstanceOf(ImageDecodeError);
            expect((err as Error).message).toMatch(/\S/);
          }
          // The decoders are synchronous inside: a pathological file would block the event loop (not time out);
          // 10 s separates "a big declared size on a busy machine" from a hang like the 183 s chunk-length one.
          expect(performance.now() - t0).toBeLessThan(10_000);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(5),
  );

  it(
    'refuses images whose header declares more than 4096×4096 pixels before decoding them',
    async () => {
      const declare = (kind: 'png' | 'jpeg', w: number, h: number) => {
        const b = images[kind === 'png' ? 'rgb' : 'jpeg']!.slice();
        if (kind === 'png') {
          new DataView(b.buffer).setUint32(16, w);
          new DataView(b.buffer).setUint32(20, h);
          return b;
        }
        for (let i = 2; i + 8 < b.length; i += 2 + ((b[i + 2]! << 8) | b[i + 3]!)) {
          const m = b[i + 1]!;
          if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
            b.set([h >> 8, h & 255, w >> 8, w & 255], i + 5);
            return b;
          }
        }
        throw new Error('no SOF in fixture');
      };
      const big = fc
        .tuple(fc.integer({ min: 1, max: 65_535 }), fc.integer({ min: 1, max: 65_535 }))
        .filter(([w, h]) => w * h > MAX_INPUT_PIXELS);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('png' as const, 'jpeg' as const), big, async (kind, [w, h]) => {
          const t0 = performance.now();
          await expect(imageToInput(declare(kind, w, h), INPUT)).rejects.toThrow(
            `image of ${w}×${h} pixels is too large (at most ${MAX_INPUT_PIXELS} pixels)`,
          );
          expect(performance.now() - t0).toBeLessThan(100);
        }),
        fuzzParams(0.2),
      );
      // A real 8000×8000 PNG is 62 KB of deflate: refused from its header too.
      const bomb = new Uint8Array(png('grey', 8000, 8000, new Uint8Array(8000 * 8000)));
      expect(bomb.length).toBeLessThan(100_000);
      await expect(imageToInput(bomb, INPUT)).rejects.toThrow(/8000×8000 pixels is too large/);
      // A PNG whose chunk length was corrupted to ~2^31 used to keep upng-js copying for minutes.
      const long = images.palette!.slice();
      new DataView(long.buffer).setUint32(33, 0x7fff0000);
      const t0 = performance.now();
      await expect(decodeImage(long)).rejects.toThrow(
        /corrupt PNG \(chunk "PLTE" at byte 33 runs past the end/,
      );
      expect(performance.now() - t0).toBeLessThan(100);
    },
    fuzzTimeout(1, 0.2),
  );

  it(
    'readImage (image-node) names the file for any unreadable content',
    async () => {
      const file = join(scratch, 'fuzz-image.bin');
      await fc.assert(
        fc.asyncProperty(anyImage(), async (bytes) => {
          await writeFile(file, bytes);
          try {
            const p = await within(5_000, 'readImage', readImage(file, 3));
            expect(p.data.length).toBe(p.width * p.height * 3);
          } catch (err) {
            expectClear(err, 'readImage');
            expect((err as Error).message).toContain(file);
          }
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(5),
  );
});

describe('dataset loaders', () => {
  function idx(dims: number[], data: Uint8Array): Uint8Array {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header.writeUInt8(0x08, 2);
    header.writeUInt8(dims.length, 3);
    dims.forEach((d, i) => {
      header.writeUInt32BE(d, 4 + 4 * i);
    });
    return new Uint8Array(Buffer.concat([header, data]));
  }

  it(
    'IDX files and fashion-mnist directories: any mutation is read or refused naming the file',
    async () => {
      const images = idx([3, 2, 2], new Uint8Array([...Array(12).keys()].map((i) => i * 20)));
      const labels = idx([3], new Uint8Array([1, 2, 3]));
      const dir = join(scratch, 'idx');
      const good = {
        'train-images-idx3-ubyte': images,
        'train-labels-idx1-ubyte': labels,
        't10k-images-idx3-ubyte': images,
        't10k-labels-idx1-ubyte': labels,
      };
      const which = fc.constantFrom(...Object.keys(good));
      await fc.assert(
        fc.asyncProperty(
          which,
          fc.boolean(),
          mutatedBytes(() => images, 8),
          mutatedBytes(() => labels, 8),
          async (name, gz, mi, ml) => {
            await rm(dir, { recursive: true, force: true });
            await writeDirAtomic(dir, good);
            const content = name.includes('images') ? mi : ml;
            await rm(join(dir, name));
            const target = gz ? `${name}.gz` : name;
            await writeFile(join(dir, target), gz ? gzipSync(content) : content);
            await outcome(`readIdx ${target}`, () =>
              readIdx(join(dir, target), name.includes('images') ? 3 : 1),
            );
            const ds = await outcome(`fashion-mnist ${target}`, () => openDataset(`fashion-mnist:${dir}`));
            if (ds) await outcome('load', () => ds.train.load([...Array(ds.train.size).keys()]));
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(10),
  );

  it(
    'CUB-200-2011: a mutated annotation file or image is read or refused with a message',
    async () => {
      const box = { x: 4, y: 4, w: 12, h: 10 };
      const im = (cls: number, train: boolean) => ({
        cls,
        train,
        width: 24,
        height: 20,
        background: [20, 20, 200] as [number, number, number],
        foreground: [220, 200, 10] as [number, number, number],
        box,
        parts: [
          [8, 8, 1],
          [10, 10, 1],
          [0, 0, 0],
        ] as [number, number, 0 | 1][],
      });
      const base = await writeCubFixture([im(0, true), im(1, true), im(0, false), im(1, false)]);
      const root = join(base, 'CUB_200_2011');
      const texts = [
        'images.txt',
        'image_class_labels.txt',
        'train_test_split.txt',
        'bounding_boxes.txt',
        'classes.txt',
        'parts/parts.txt',
        'parts/part_locs.txt',
      ];
      const originals = Object.fromEntries(
        await Promise.all(texts.map(async (t) => [t, await readFile(join(root, t), 'utf8')] as const)),
      );
      const imageFile = join(root, 'images', (originals['images.txt']!.split('\n')[0] ?? '').split(' ')[1]!);
      const imageBytes = new Uint8Array(await readFile(imageFile));
      const textEdit = fc.record({
        file: fc.constantFrom(...texts),
        line: fc.nat(),
        field: fc.nat(),
        value: fc.oneof(
          fc.constantFrom('', '-1', '0', '999', 'NaN', '1e309', '../../etc/passwd', '1.5', 'x y z'),
          fc.string({ maxLength: 12 }),
        ),
        mode: fc.constantFrom('replace', 'drop-line', 'duplicate-line', 'delete-file', 'truncate'),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            textEdit,
            mutatedBytes(() => imageBytes, 8).map((bytes) => ({ image: bytes })),
          ),
          fc.constantFrom('', '?crop=none', '?skip-corrupt', '?size=16&channels=1'),
          async (edit, query) => {
            try {
              if ('image' in edit) await writeFile(imageFile, edit.image);
              else {
                const path = join(root, edit.file);
                const lines = originals[edit.file]!.split('\n');
                const l = edit.line % lines.length;
                if (edit.mode === 'delete-file') await rm(path);
                else {
                  if (edit.mode === 'replace') {
                    const f = lines[l]!.split(' ');
                    f[edit.field % Math.max(1, f.length)] = edit.value;
                    lines[l] = f.join(' ');
                  } else if (edit.mode === 'drop-line') lines.splice(l, 1);
                  else if (edit.mode === 'duplicate-line') lines.splice(l, 0, lines[l]!);
                  else lines.splice(l, lines.length, lines[l]!.slice(0, edit.field % (lines[l]!.length + 1)));
                  await writeFile(path, lines.join('\n'));
                }
              }
              const ds = await outcome('cub open', () => openDataset(`cub:${base}${query || '?size=16'}`));
              if (ds) {
                await outcome('cub load train', () => ds.train.load([...Array(ds.train.size).keys()]));
                await outcome('cub load test', () => ds.test.load([...Array(ds.test.size).keys()]));
              }
            } finally {
              for (const t of texts) await writeFile(join(root, t), originals[t]!);
              await writeFile(imageFile, imageBytes);
            }
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(30),
  );

  it(
    'Stanford Cars: mutated .mat files are read or refused with a message',
    async () => {
      const car = (cls: number) => ({
        cls,
        width: 24,
        height: 20,
        bbox: [3, 3, 20, 16] as [number, number, number, number],
      });
      const root = await writeCarsFixture([car(1), car(2), car(3)], [car(3), car(1)]);
      const mats = ['devkit/cars_meta.mat', 'devkit/cars_train_annos.mat', 'cars_test_annos_withlabels.mat'];
      const originals = Object.fromEntries(
        await Promise.all(mats.map(async (m) => [m, new Uint8Array(await readFile(join(root, m)))] as const)),
      );
      await fc.assert(
        fc.asyncProperty(
          fc
            .constantFrom(...mats)
            .chain((m) => mutatedBytes(() => originals[m]!, 8).map((bytes) => ({ m, bytes }))),
          async ({ m, bytes }) => {
            try {
              await writeFile(join(root, m), bytes);
              const ds = await outcome('cars open', () => openDataset(`cars:${root}?size=16`));
              if (ds) await outcome('cars load', () => ds.train.load([...Array(ds.train.size).keys()]));
            } finally {
              await writeFile(join(root, m), originals[m]!);
            }
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(20),
  );

  it(
    'ImageFolder and data specs: odd trees, files and options are read or refused with a message',
    async () => {
      const dir = join(scratch, 'folder');
      const good = {
        'train/cat/a.png': images.rgb!,
        'train/dog/b.jpg': images.jpeg!,
        'test/cat/c.png': images.grey!,
        'test/dog/d.png': images.palette!,
      };
      const spec = fc.oneof(
        fc.constantFrom(
          '',
          '?size=8',
          '?size=0',
          '?size=8x',
          '?size=99999',
          '?resize=nope',
          '?channels=2',
          '?split=0.5',
          '?split=2',
          '?skip-corrupt',
          '?size=8&size=9',
        ),
        fc.string({ maxLength: 20 }).map((s) => `?${s}`),
      );
      const tree = fc.record({
        victim: fc.constantFrom(...Object.keys(good)),
        bytes: fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.constantFrom('rgb', 'jpeg', 'rgba').chain((k) => mutatedBytes(() => images[k]!, 8)),
        ),
        drop: fc.constantFrom('none', 'test', 'train/dog', 'train'),
      });
      await fc.assert(
        fc.asyncProperty(tree, spec, async ({ victim, bytes, drop }, query) => {
          await rm(dir, { recursive: true, force: true });
          await writeDirAtomic(dir, { ...good, [victim]: bytes });
          if (drop !== 'none') await rm(join(dir, drop), { recursive: true, force: true });
          const ds = await outcome('imagefolder open', () => openDataset(`imagefolder:${dir}${query}`));
          if (ds) await outcome('imagefolder load', () => ds.train.load([...Array(ds.train.size).keys()]));
        }),
        fuzzParams(),
      );
      // Whole spec strings, including ones that point outside any dataset.
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ maxLength: 30 }),
            fc.constantFrom(
              'fashion-mnist:',
              'cub:',
              'cars:/nope',
              'imagefolder:../../..',
              'parts:x',
              'a:b:c?d=e',
            ),
          ),
          async (s) => {
            const ds = await outcome(`openDataset(${JSON.stringify(s)})`, () => openDataset(s), 60_000);
            expect(ds === undefined || ds.train.size >= 0).toBe(true);
          },
        ),
        fuzzParams(0.2),
      );
    },
    fuzzTimeout(15, 1.2),
  );
});

describe('checkpoint loader', () => {
  let good: string;
  let files: string[];

  beforeAll(async () => {
    const out = await mkdtemp(join(tmpdir(), 'pp-fuzz-ckpt-'));
    await trainTinyModel(out);
    good = (await latestCheckpoint(out))!;
    files = (await readdir(good)).filter((f) => !f.startsWith('.'));
  }, 120_000);

  it(
    'loads an intact checkpoint or refuses any damaged one with a message, leaking no tensor',
    async () => {
      const before = tf.memory().numTensors;
      const jsonTexts: Record<string, string> = {};
      for (const f of files.filter((n) => n.endsWith('.json')))
        jsonTexts[f] = await readFile(join(good, f), 'utf8');
      const damage = fc.oneof(
        fc.constantFrom(...files).map((f) => ({ f, kind: 'delete' as const })),
        fc
          .constantFrom(...files)
          .chain((f) =>
            fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => ({ f, kind: 'truncate' as const, a, b })),
          ),
        fc
          .constantFrom(...files)
          .chain((f) =>
            fc
              .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
              .map((edits) => ({ f, kind: 'flip' as const, edits })),
          ),
        fc
          .constantFrom(...Object.keys(jsonTexts))
          .chain((f) => mutatedJson(() => jsonTexts[f]!).map((text) => ({ f, kind: 'json' as const, text }))),
      );
      const dir = join(scratch, 'ckpt', 'checkpoints', 'epoch-0003');
      await fc.assert(
        fc.asyncProperty(damage, async (d) => {
          await rm(join(scratch, 'ckpt'), { recursive: true, force: true });
          await cp(good, dir, { recursive: true });
          const path = join(dir, d.f);
          const bytes = new Uint8Array(await readFile(path));
          if (d.kind === 'delete') await rm(path);
          else if (d.kind === 'truncate')
            await writeFile(path, bytes.subarray(0, d.a % Math.max(1, bytes.length)));
          else if (d.kind === 'flip') {
            for (const [at, v] of d.edits) bytes[at % bytes.length] = v;
            await writeFile(path, bytes);
          } else await writeFile(path, d.text);
          await writeFile(join(scratch, 'ckpt', 'checkpoints', 'LATEST'), 'epoch-0003\n');
          const r = await outcome(`loadCheckpoint after ${d.kind} ${d.f}`, async () => {
            const at = await latestCheckpoint(join(scratch, 'ckpt'));
            return loadCheckpoint(at!);
          });
          r?.model.dispose();
          expect(tf.memory().numTensors, `tensors after ${d.kind} ${d.f}`).toBe(before);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(40),
  );

  it('refuses a damaged LATEST pointer with a message naming it', async () => {
    const out = join(scratch, 'latest');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('../../etc', 'epoch-0001/../..', '')),
        async (text) => {
          await rm(out, { recursive: true, force: true });
          await writeDirAtomic(join(out, 'checkpoints'), { LATEST: text });
          const r = await outcome('latestCheckpoint', () => latestCheckpoint(out));
          if (r !== undefined) expect(r).toMatch(/checkpoints\/epoch-\d{4}$/);
        },
      ),
      fuzzParams(0.5),
    );
  });

  it('an interrupted save leaves the previous checkpoint in place and no partial directory behind', async () => {
    const parent = join(scratch, 'atomic');
    await rm(parent, { recursive: true, force: true });
    const target = join(parent, 'epoch-0001');
    await writeDirAtomic(target, { 'a.bin': new Uint8Array([1, 2, 3]), 'manifest.json': '{"ok":true}' });
    // The second save fails part-way through (a file name the filesystem refuses).
    await expect(
      writeDirAtomic(target, { 'a.bin': new Uint8Array([9]), 'bad\0name': 'x', 'manifest.json': '{}' }),
    ).rejects.toThrow();
    expect([...(await readFile(join(target, 'a.bin')))]).toEqual([1, 2, 3]);
    expect(await readFile(join(target, 'manifest.json'), 'utf8')).toBe('{"ok":true}');
    expect(await readdir(parent)).toEqual(['epoch-0001']);
    expect((await stat(target)).isDirectory()).toBe(true);
  });
});
