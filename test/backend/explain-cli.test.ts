// `protopool explain` and `gallery`: JSON evidence and pictures a person can open.
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Explanation, GlobalExplanation, ModelManifest } from '@protopool/shared';
import UPNG from 'upng-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, trainTinyModel } from '../helpers/backend-process';
import { png } from '../helpers/image-files';

let modelDir: string;
let work: string;
const run = (args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' },
  });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pp-explain-cli-'));
  modelDir = await trainTinyModel(join(work, 'run'));
});

describe('protopool explain', () => {
  it('writes a schema-valid explanation and a class card with one row per slot', async () => {
    const grey = Array.from({ length: 40 * 30 }, (_, i) => (i * 7) % 256);
    const image = join(work, 'shirt.png');
    await writeFile(image, png('grey', 40, 30, grey));
    const out = join(work, 'out');
    const r = run(['explain', '--model', modelDir, image, '--out', out, '--json', '--top-k', '4']);
    expect(r.status).toBe(0);
    const [printed] = JSON.parse(r.stdout.trim()) as Explanation[];
    const written = Explanation.parse(JSON.parse(await readFile(join(out, 'shirt.json'), 'utf8')));
    expect(written.id).toBe(printed!.id);
    expect(written.topK).toHaveLength(4);
    const manifest = ModelManifest.parse(JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')));
    const card = UPNG.decode((await readFile(join(out, 'shirt.png'))).buffer as ArrayBuffer);
    // A header, then rows: the 28 px input enlarged ×6 = 168 px tall, one per slot, 12 px apart. The header
    // is 6 px of padding, an 18 px line (⌈18·1.35⌉ = 25 px), a 13 px line (⌈13·1.35⌉ = 18 px), a second
    // 13 px line when the input is flagged as novel, and 6 px: 55 or 73 px.
    const k = manifest.architecture.slotsPerClass;
    const header = written.novelty?.flagged ? 73 : 55;
    expect(card.height).toBe(header + 12 + k * 168 + (k - 1) * 12);
    // Each row: input ×6 | training patch fitted to 168 px | the slot's numbers, 220 px wide, 12 px apart.
    expect(card.width).toBe(168 + 12 + 168 + 12 + 220);
  });

  it('with --html writes one page per image: the prediction, its card inlined, a row per slot', async () => {
    const image = join(work, 'shirt.png');
    const out = join(work, 'html');
    const r = run(['explain', '--model', modelDir, image, '--out', out, '--html']);
    expect(r.status).toBe(0);
    const e = Explanation.parse(JSON.parse(await readFile(join(out, 'shirt.json'), 'utf8')));
    const page = await readFile(join(out, 'shirt.html'), 'utf8');
    expect(page).toContain(
      `<strong>${e.prediction.label}</strong>, ${(100 * e.prediction.probability).toFixed(1)}%`,
    );
    const card = await readFile(join(out, 'shirt.png'));
    expect(page).toContain(`data:image/png;base64,${card.toString('base64')}`);
    expect(page.match(/<tbody>(.*?)<\/tbody>/s)![1]!.match(/<tr>/g)).toHaveLength(e.classes[0]!.slots.length);
    expect(page.includes('looks like nothing the model was trained on')).toBe(e.novelty!.flagged);
    const noOut = run(['explain', '--model', modelDir, image, '--html']);
    expect(noOut.status).toBe(2);
    expect(noOut.stderr).toMatch(/--html writes pages into --out <dir>/);
  });

  it('names an unreadable image and exits 2', async () => {
    const bad = join(work, 'bad.png');
    await writeFile(bad, 'not an image');
    const r = run(['explain', '--model', modelDir, bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${bad}: not a JPEG or PNG file`);
  });
});

describe('protopool gallery', () => {
  it('writes a sheet of every projected prototype and the global explanation', async () => {
    const out = join(work, 'gallery');
    const r = run(['gallery', '--model', modelDir, '--out', out]);
    expect(r.status).toBe(0);
    const g = GlobalExplanation.parse(JSON.parse(await readFile(join(out, 'gallery.json'), 'utf8')));
    const sheet = UPNG.decode((await readFile(join(out, 'gallery.png'))).buffer as ArrayBuffer);
    const n = g.prototypes.filter((p) => p.source).length;
    // 96 px cells, 6 px gaps, 8 per row.
    expect(sheet.width).toBe(Math.min(n, 8) * 96 + (Math.min(n, 8) - 1) * 6);
    expect(sheet.height).toBe(Math.ceil(n / 8) * 96 + (Math.ceil(n / 8) - 1) * 6);
  });
});

describe('protopool calibrate', () => {
  it('stores the novelty calibration of a model in its manifest and nothing else; data of other classes is refused', async () => {
    const dir = join(work, 'calibrated');
    await cp(modelDir, dir, { recursive: true });
    const manifestPath = join(dir, 'manifest.json');
    const before = ModelManifest.parse(JSON.parse(await readFile(manifestPath, 'utf8')));
    await writeFile(manifestPath, JSON.stringify({ ...before, novelty: undefined }));
    const r = run(['calibrate', '--model', dir, '--data', 'fashion-mnist:embedded']);
    expect(r.status).toBe(0);
    const after = ModelManifest.parse(JSON.parse(await readFile(manifestPath, 'utf8')));
    // The embedded training split has more than 2000 images: a seeded 2000 of them.
    expect(after.novelty!.images).toBe(2000);
    expect(JSON.parse(r.stdout.trim())).toEqual({
      model: dir,
      images: 2000,
      threshold: after.novelty!.percentiles[5],
    });
    const { novelty: _n, ...rest } = after;
    const { novelty: _b, ...restBefore } = before;
    expect(rest).toEqual(restBefore); // version, files, metrics: untouched
    const other = run(['calibrate', '--model', dir, '--data', 'parts?classes=3&train=4&test=2&size=28']);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/its classes are not the model's/);
  });
});
