// The generated "parts" dataset: classes told apart by small coloured parts, written in the CUB layout with ground truth.
// Each class puts one (shape, colour) marker at each of four positions on a body. A position's markers are
// its own (as a crown is always on a bird's head), so a part is semantic, as the interpretability metrics
// assume; each marker recurs across classes, so prototypes of a marker can be shared. Backgrounds are textured and cluttered, parts are sometimes occluded.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import UPNG from 'upng-js';
import { deriveSeed, mulberry32 } from '../util/random';

/** Bump when the pictures change, so caches of an older generator are not reused. */
export const PARTS_GENERATOR_VERSION = 2;

export const SHAPES = ['circle', 'square', 'triangle', 'diamond'] as const;
export const COLOURS = {
  red: [220, 30, 30],
  green: [30, 190, 40],
  blue: [40, 70, 230],
  yellow: [240, 220, 20],
  magenta: [210, 40, 210],
  cyan: [20, 210, 220],
} as const satisfies Record<string, readonly [number, number, number]>;
type Colour = keyof typeof COLOURS;
type Shape = (typeof SHAPES)[number];
export const PART_POSITIONS = ['top', 'right', 'bottom', 'left'] as const;

export interface PartsOptions {
  seed: number;
  /** Image side in pixels. */
  size: number;
  classes: number;
  trainPerClass: number;
  testPerClass: number;
}

export const DEFAULT_PARTS: PartsOptions = {
  seed: 0,
  size: 64,
  classes: 15,
  // 200 per class: with fewer the small CNN learns the markers far less well (NOTES.md, "Parts defaults").
  trainPerClass: 200,
  testPerClass: 50,
};

/**
 * Training defaults for the parts data (a config file overrides them): one slot per marker position, a
 * longer joint phase with a later learning-rate step, which the small CNN's 16×16 grid at 64 px needs, and
 * slot revival. With 3 slots a class's third slot, which two markers made redundant, took a body or
 * background prototype. The runs behind each choice are in NOTES.md ("Parts defaults", "Slot revival").
 */
export const PARTS_TRAIN_DEFAULTS = {
  model: { slotsPerClass: 4 },
  epochs: { joint: 14 },
  lrStep: { every: 10 },
  // Slot revival: without it the frozen random assignment leaves 7–9 of the 60 slots with a prototype that
  // scores the same on its class as elsewhere; with it accuracy and consistency rise on every seed tried.
  revive: {},
};

interface Marker {
  shape: Shape;
  colour: Colour;
}

/** Classes as one marker per position, from a few options per position, pairwise different at ≥ 2 positions. */
export function partsClasses(o: PartsOptions): Marker[][] {
  const rand = mulberry32(deriveSeed(o.seed, 0xc1a55));
  const colours = Object.keys(COLOURS) as Colour[];
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  // Four options per position, no marker at two positions: few enough that every marker is shared by
  // several classes, and a prototype of a marker always lands on the same part.
  const seen = new Set<string>();
  const options = PART_POSITIONS.map(() => {
    const out: Marker[] = [];
    while (out.length < 4) {
      const m = { shape: pick(SHAPES), colour: pick(colours) };
      if (!seen.has(`${m.shape}/${m.colour}`)) {
        seen.add(`${m.shape}/${m.colour}`);
        out.push(m);
      }
    }
    return out;
  });
  const classes: number[][] = [];
  for (let tries = 0; classes.length < o.classes; tries++) {
    if (tries > 100_000) throw new Error(`cannot make ${o.classes} classes that differ at two positions`);
    const c = options.map(() => Math.floor(rand() * 4));
    if (classes.every((d) => d.filter((v, i) => v !== c[i]).length >= 2)) classes.push(c);
  }
  return classes.map((c) => c.map((k, p) => options[p]![k]!));
}

export function className(markers: Marker[]): string {
  return markers.map((m) => `${m.colour}-${m.shape}`).join('_');
}

interface Drawn {
  rgb: Uint8Array;
  parts: { x: number; y: number; visible: boolean }[];
  box: { x: number; y: number; w: number; h: number };
}

function inShape(shape: Shape, dx: number, dy: number, r: number): boolean {
  switch (shape) {
    case 'circle':
      return dx * dx + dy * dy <= r * r;
    case 'square':
      return Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85;
    case 'diamond':
      return Math.abs(dx) + Math.abs(dy) <= r * 1.15;
    default:
      // Upward triangle with its centroid at the centre.
      return dy <= r * 0.6 && dy >= -r && Math.abs(dx) <= (dy + r) * 0.62;
  }
}

/** Colours the pixels whose centres pass `test`, looking only within `reach` of (cx, cy). */
function paint(
  rgb: Uint8Array,
  size: number,
  test: (x: number, y: number) => boolean,
  colour: readonly number[],
  cx: number,
  cy: number,
  reach: number,
) {
  const lo = (v: number) => Math.max(0, Math.floor(v - reach));
  const hi = (v: number) => Math.min(size, Math.ceil(v + reach));
  for (let y = lo(cy); y < hi(cy); y++) {
    for (let x = lo(cx); x < hi(cx); x++) {
      if (!test(x + 0.5, y + 0.5)) continue;
      const o = (y * size + x) * 3;
      rgb[o] = colour[0]!;
      rgb[o + 1] = colour[1]!;
      rgb[o + 2] = colour[2]!;
    }
  }
}

/** One picture of class `markers`, deterministic from `seed`. */
export function drawPartsImage(markers: Marker[], size: number, seed: number): Drawn {
  const rand = mulberry32(seed);
  const range = (a: number, b: number) => a + (b - a) * rand();
  const rgb = new Uint8Array(size * size * 3);
  // Texture: two coloured gratings and pixel noise.
  const g = [0, 1].map(() => ({
    ...((a) => ({ cos: Math.cos(a), sin: Math.sin(a) }))(range(0, Math.PI)),
    freq: range(0.15, 0.6),
    phase: range(0, 2 * Math.PI),
    colour: [range(60, 170), range(60, 170), range(60, 170)],
    amp: range(15, 40),
  }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      const s0 = g[0]!.amp * Math.sin((x * g[0]!.cos + y * g[0]!.sin) * g[0]!.freq + g[0]!.phase);
      const s1 = g[1]!.amp * Math.sin((x * g[1]!.cos + y * g[1]!.sin) * g[1]!.freq + g[1]!.phase);
      for (let k = 0; k < 3; k++) {
        const v = (g[0]!.colour[k]! + g[1]!.colour[k]!) / 2 + s0 + s1;
        rgb[o + k] = Math.max(0, Math.min(255, Math.round(v + range(-12, 12))));
      }
    }
  }
  // Clutter: muted blobs and thin bars, some in marker shapes, so neither colour nor shape alone is the class.
  const clutter = 3 + Math.floor(rand() * 4);
  for (let i = 0; i < clutter; i++) {
    const cx = range(0, size);
    const cy = range(0, size);
    const grey = range(50, 200);
    const colour = [grey + range(-30, 30), grey + range(-30, 30), grey + range(-30, 30)];
    if (rand() < 0.5) {
      const shape = SHAPES[Math.floor(rand() * SHAPES.length)]!;
      const r = size * range(0.04, 0.08);
      paint(rgb, size, (x, y) => inShape(shape, x - cx, y - cy, r), colour, cx, cy, r * 1.2);
    } else {
      const a = range(0, Math.PI);
      const len = size * range(0.2, 0.5);
      const w = size * range(0.01, 0.025);
      paint(
        rgb,
        size,
        (x, y) => {
          const u = (x - cx) * Math.cos(a) + (y - cy) * Math.sin(a);
          const v = -(x - cx) * Math.sin(a) + (y - cy) * Math.cos(a);
          return Math.abs(u) <= len / 2 && Math.abs(v) <= w;
        },
        colour,
        cx,
        cy,
        len / 2 + w,
      );
    }
  }
  // Body: a tilted ellipse in an earthy tone.
  const cx = size * range(0.38, 0.62);
  const cy = size * range(0.38, 0.62);
  const rx = size * range(0.22, 0.3);
  const ry = size * range(0.22, 0.3);
  const tilt = range(-0.4, 0.4);
  const body = [range(110, 170), range(90, 130), range(60, 100)];
  const cos = Math.cos(tilt);
  const sin = Math.sin(tilt);
  paint(
    rgb,
    size,
    (x, y) => {
      const u = (x - cx) * cos + (y - cy) * sin;
      const v = -(x - cx) * sin + (y - cy) * cos;
      return (u / rx) ** 2 + (v / ry) ** 2 <= 1;
    },
    body,
    cx,
    cy,
    Math.max(rx, ry),
  );
  // Markers at top, right, bottom, left of the body (in the body's frame), slightly jittered; some occluded.
  const r = size * 0.075;
  const local = [
    [0, -ry * 0.7],
    [rx * 0.7, 0],
    [0, ry * 0.7],
    [-rx * 0.7, 0],
  ] as const;
  const parts = markers.map((m, p) => {
    const [u, v] = local[p]!;
    const x = cx + u * cos - v * sin + range(-0.04, 0.04) * size;
    const y = cy + u * sin + v * cos + range(-0.04, 0.04) * size;
    const visible = rand() >= 0.08;
    if (visible)
      paint(rgb, size, (px, py) => inShape(m.shape, px - x, py - y, r), COLOURS[m.colour], x, y, r * 1.2);
    return { x, y, visible };
  });
  const x0 = Math.max(0, Math.min(cx - rx, cx - ry) - r);
  const y0 = Math.max(0, Math.min(cy - ry, cy - rx) - r);
  const x1 = Math.min(size, Math.max(cx + rx, cx + ry) + r);
  const y1 = Math.min(size, Math.max(cy + ry, cy + rx) + r);
  return { rgb, parts, box: { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } };
}

function toPng(rgb: Uint8Array, size: number): Uint8Array {
  const rgba = new Uint8Array(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    rgba[4 * i] = rgb[3 * i]!;
    rgba[4 * i + 1] = rgb[3 * i + 1]!;
    rgba[4 * i + 2] = rgb[3 * i + 2]!;
    rgba[4 * i + 3] = 255;
  }
  return new Uint8Array(UPNG.encode([rgba.buffer], size, size, 0));
}

const fmt = (v: number) => v.toFixed(2);

/** Writes the whole dataset in the CUB_200_2011 layout under `root` (PNG images, lossless). */
export async function writePartsDataset(root: string, o: PartsOptions): Promise<void> {
  const classes = partsClasses(o);
  const names = classes.map((m, c) => `${String(c + 1).padStart(3, '0')}.${className(m)}`);
  for (const n of names) await mkdir(join(root, 'images', n), { recursive: true });
  await mkdir(join(root, 'parts'), { recursive: true });
  const images: string[] = [];
  const labels: string[] = [];
  const split: string[] = [];
  const boxes: string[] = [];
  const locs: string[] = [];
  let id = 0;
  // Classes interleaved in id order, so a "first n images" limit still covers every class.
  for (const [isTrain, perClass] of [
    [1, o.trainPerClass],
    [0, o.testPerClass],
  ] as const) {
    for (let k = 0; k < perClass; k++) {
      for (let c = 0; c < classes.length; c++) {
        id++;
        const d = drawPartsImage(classes[c]!, o.size, deriveSeed(o.seed, id));
        const path = `${names[c]}/${String(id).padStart(5, '0')}.png`;
        await writeFile(join(root, 'images', path), toPng(d.rgb, o.size));
        images.push(`${id} ${path}`);
        labels.push(`${id} ${c + 1}`);
        split.push(`${id} ${isTrain}`);
        boxes.push(`${id} ${fmt(d.box.x)} ${fmt(d.box.y)} ${fmt(d.box.w)} ${fmt(d.box.h)}`);
        // CUB writes "0 0 0" for parts that are not visible.
        d.parts.forEach((p, i) => {
          locs.push(p.visible ? `${id} ${i + 1} ${fmt(p.x)} ${fmt(p.y)} 1` : `${id} ${i + 1} 0.0 0.0 0`);
        });
      }
    }
  }
  const lines = (xs: string[]) => `${xs.join('\n')}\n`;
  await writeFile(join(root, 'images.txt'), lines(images));
  await writeFile(join(root, 'image_class_labels.txt'), lines(labels));
  await writeFile(join(root, 'train_test_split.txt'), lines(split));
  await writeFile(join(root, 'bounding_boxes.txt'), lines(boxes));
  await writeFile(join(root, 'classes.txt'), lines(names.map((n, c) => `${c + 1} ${n}`)));
  await writeFile(
    join(root, 'parts', 'parts.txt'),
    lines(PART_POSITIONS.map((p, i) => `${i + 1} ${p} marker`)),
  );
  await writeFile(join(root, 'parts', 'part_locs.txt'), lines(locs));
  await writeFile(
    join(root, 'generator.json'),
    `${JSON.stringify({ version: PARTS_GENERATOR_VERSION, ...o })}\n`,
  );
}

export function partsCacheDir(o: PartsOptions, base = tmpdir()): string {
  const key = `v${PARTS_GENERATOR_VERSION}-s${o.seed}-${o.size}px-${o.classes}c-${o.trainPerClass}+${o.testPerClass}`;
  return join(base, `protopool-parts-${key}`, 'CUB_200_2011');
}

/** The generated dataset's CUB directory, written on first use (into a temporary name, then renamed whole). */
export async function ensurePartsDataset(o: PartsOptions, base?: string): Promise<string> {
  const root = partsCacheDir(o, base);
  if (existsSync(join(root, 'generator.json'))) return root;
  const staging = `${root}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(dirname(root), { recursive: true });
  await rm(staging, { recursive: true, force: true });
  await writePartsDataset(staging, o);
  try {
    await rename(staging, root);
  } catch (err) {
    // Another process finished the same deterministic set first: theirs is identical.
    await rm(staging, { recursive: true, force: true });
    if (!existsSync(join(root, 'generator.json'))) throw err;
  }
  return root;
}
