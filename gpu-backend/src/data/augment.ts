// Seeded training augmentation on normalised NHWC batches (flip, rotation, shear, zoom/crop, colour jitter),
// moving part locations and boxes with the pixels; and the published runs' offline ×30 set as a lazy Split.
// Plain loops, not TF.js ops: it runs on the loader side so it overlaps the step, and wasm has no affine-warp kernel.
import type { InputSpec } from '@protopool/shared';
import { deriveSeed, mulberry32 } from '../util/random';
import type { Batch, PartLocation, Split } from './dataset';
import type { Rect } from './image';

export interface AugmentOptions {
  /** Probability of a horizontal flip. */
  flip: number;
  /** Maximum rotation, degrees either way. */
  rotate: number;
  /** Maximum horizontal shear angle, degrees either way. */
  shear: number;
  /** Zoom range (>1 crops in); each axis may differ by `aspect`. */
  zoom: [number, number];
  aspect: number;
  /** Maximum shift as a fraction of the side. */
  translate: number;
  /** Maximum relative change of brightness, contrast, saturation (0.2 = ×0.8..×1.2). */
  brightness: number;
  contrast: number;
  saturation: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = {
  flip: 0.5,
  rotate: 10,
  shear: 5,
  zoom: [1, 1.15],
  aspect: 0.05,
  translate: 0.05,
  brightness: 0.2,
  contrast: 0.2,
  saturation: 0.2,
};

export const NO_AUGMENT: AugmentOptions = {
  flip: 0,
  rotate: 0,
  shear: 0,
  zoom: [1, 1],
  aspect: 0,
  translate: 0,
  brightness: 0,
  contrast: 0,
  saturation: 0,
};

/** Forward map of one augmentation: output = centre + m·(input − centre) + t. */
interface Affine {
  m: [number, number, number, number];
  tx: number;
  ty: number;
}

function drawAffine(
  rand: () => number,
  o: AugmentOptions,
): { affine: Affine; colour: [number, number, number] } {
  const u = (max: number) => (2 * rand() - 1) * max;
  const flip = rand() < o.flip ? -1 : 1;
  const theta = (u(o.rotate) * Math.PI) / 180;
  const shear = Math.tan((u(o.shear) * Math.PI) / 180);
  const zoom = o.zoom[0] + (o.zoom[1] - o.zoom[0]) * rand();
  const stretch = 1 + u(o.aspect);
  const sx = zoom * stretch * flip;
  const sy = zoom / stretch;
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  // R · Shear · Scale: [[c, -s], [s, c]] · [[1, k], [0, 1]] · diag(sx, sy).
  const m: Affine['m'] = [c * sx, (c * shear - s) * sy, s * sx, (s * shear + c) * sy];
  const tx = u(o.translate);
  const ty = u(o.translate);
  const colour: [number, number, number] = [1 + u(o.brightness), 1 + u(o.contrast), 1 + u(o.saturation)];
  return { affine: { m, tx, ty }, colour };
}

function forward(a: Affine, w: number, h: number, x: number, y: number): { x: number; y: number } {
  const dx = x - w / 2;
  const dy = y - h / 2;
  return { x: w / 2 + a.m[0] * dx + a.m[1] * dy + a.tx * w, y: h / 2 + a.m[2] * dx + a.m[3] * dy + a.ty * h };
}

/** Bilinear warp of one normalised image; samples outside the source read 0 (the mean, after normalisation). */
function warp(src: Float32Array, w: number, h: number, c: number, a: Affine): Float32Array {
  const [m0, m1, m2, m3] = a.m;
  const det = m0 * m3 - m1 * m2;
  const i0 = m3 / det;
  const i1 = -m1 / det;
  const i2 = -m2 / det;
  const i3 = m0 / det;
  const out = new Float32Array(src.length);
  const at = (x: number, y: number, k: number) =>
    x < 0 || y < 0 || x >= w || y >= h ? 0 : src[(y * w + x) * c + k]!;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx = x + 0.5 - w / 2 - a.tx * w;
      const dy = y + 0.5 - h / 2 - a.ty * h;
      // Source pixel-centre coordinates of this output pixel's centre.
      const sx = w / 2 + i0 * dx + i1 * dy - 0.5;
      const sy = h / 2 + i2 * dx + i3 * dy - 0.5;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const o = (y * w + x) * c;
      for (let k = 0; k < c; k++) {
        out[o + k] =
          (at(x0, y0, k) * (1 - fx) + at(x0 + 1, y0, k) * fx) * (1 - fy) +
          (at(x0, y0 + 1, k) * (1 - fx) + at(x0 + 1, y0 + 1, k) * fx) * fy;
      }
    }
  }
  return out;
}

/** Brightness, contrast and saturation in pixel space (0..1), clipped, then normalised again. */
function jitter(
  img: Float32Array,
  c: number,
  input: InputSpec,
  [b, ct, sat]: [number, number, number],
): void {
  if (b === 1 && ct === 1 && sat === 1) return;
  const n = img.length / c;
  const px = new Float32Array(img.length);
  let lum = 0;
  for (let i = 0; i < n; i++) {
    let g = 0;
    for (let k = 0; k < c; k++) {
      const v = (img[i * c + k]! * input.std[k]! + input.mean[k]!) * b;
      px[i * c + k] = v;
      g += c === 3 ? [0.299, 0.587, 0.114][k]! * v : v;
    }
    lum += g;
  }
  lum /= n;
  for (let i = 0; i < n; i++) {
    const grey = c === 3 ? 0.299 * px[i * 3]! + 0.587 * px[i * 3 + 1]! + 0.114 * px[i * 3 + 2]! : px[i]!;
    for (let k = 0; k < c; k++) {
      const v0 = px[i * c + k]!;
      const v1 = c === 3 ? grey + (v0 - grey) * sat : v0;
      const v = Math.min(1, Math.max(0, lum + (v1 - lum) * ct));
      img[i * c + k] = (v - input.mean[k]!) / input.std[k]!;
    }
  }
}

function movePart(p: PartLocation, a: Affine, w: number, h: number): PartLocation {
  const q = forward(a, w, h, p.x, p.y);
  return { part: p.part, x: q.x, y: q.y, visible: p.visible && q.x >= 0 && q.x < w && q.y >= 0 && q.y < h };
}

function moveBox(r: Rect, a: Affine, w: number, h: number): Rect | null {
  const corners = [
    forward(a, w, h, r.x0, r.y0),
    forward(a, w, h, r.x1, r.y0),
    forward(a, w, h, r.x0, r.y1),
    forward(a, w, h, r.x1, r.y1),
  ];
  const box = {
    x0: Math.max(0, Math.min(...corners.map((p) => p.x))),
    y0: Math.max(0, Math.min(...corners.map((p) => p.y))),
    x1: Math.min(w, Math.max(...corners.map((p) => p.x))),
    y1: Math.min(h, Math.max(...corners.map((p) => p.y))),
  };
  return box.x1 > box.x0 && box.y1 > box.y0 ? box : null;
}

/**
 * A new batch with every image augmented independently. `seed` is one number (image b uses (seed, b)) or one
 * seed per image (so an image's augmentation does not depend on which batch it lands in).
 */
export function augmentBatch(
  batch: Batch,
  input: InputSpec,
  seed: number | readonly number[],
  options: Partial<AugmentOptions> = {},
): Batch {
  const o = { ...DEFAULT_AUGMENT, ...options };
  const [n, h, w, c] = batch.shape;
  const per = h * w * c;
  const x = new Float32Array(batch.x.length);
  const parts: PartLocation[][] = [];
  const boxes: (Rect | null)[] = [];
  for (let b = 0; b < n; b++) {
    const s = typeof seed === 'number' ? deriveSeed(seed, b) : seed[b]!;
    const { affine, colour } = drawAffine(mulberry32(s), o);
    const img = warp(batch.x.subarray(b * per, (b + 1) * per), w, h, c, affine);
    jitter(img, c, input, colour);
    x.set(img, b * per);
    if (batch.parts) parts.push(batch.parts[b]!.map((p) => movePart(p, affine, w, h)));
    if (batch.boxes) boxes.push(batch.boxes[b] ? moveBox(batch.boxes[b]!, affine, w, h) : null);
  }
  return {
    ...batch,
    x,
    ...(batch.parts ? { parts } : {}),
    ...(batch.boxes ? { boxes } : {}),
  };
}

/**
 * The published runs' offline augmentation (ProtoPNet's img_aug.py, used by ProtoPool): per training image,
 * 10 rotations (±15°), 10 skews and 10 shears (±10°), each flipped with probability ½. Skew is a perspective
 * warp there; here it is approximated by an anisotropic zoom with shear (affine only). Lazy: nothing on disk.
 */
export const OFFLINE_PIPELINES: Partial<AugmentOptions>[] = [
  { ...NO_AUGMENT, flip: 0.5, rotate: 15 },
  { ...NO_AUGMENT, flip: 0.5, aspect: 0.2, shear: 5, zoom: [1, 1.1] },
  { ...NO_AUGMENT, flip: 0.5, shear: 10 },
];

/**
 * `copies` augmented versions of every training image as one Split (index k: image k mod n, copy ⌊k/n⌋, so
 * a first-n limit still covers all images). Projection must keep using the un-augmented split.
 */
export function offlineAugmented(split: Split, input: InputSpec, seed: number, copies = 30): Split {
  const n = split.size;
  const base = (k: number) => k % n;
  const copy = (k: number) => Math.floor(k / n);
  const labels = new Int32Array(n * copies);
  for (let k = 0; k < labels.length; k++) labels[k] = split.labels[base(k)]!;
  const id = (k: number) => `${split.id(base(k))}#aug${copy(k)}`;
  return {
    size: n * copies,
    labels,
    id,
    ...(split.partNames ? { partNames: split.partNames } : {}),
    ...(split.skipped ? { skipped: split.skipped } : {}),
    load: async (indices) => {
      const loaded = await split.load(indices.map(base));
      // Skipped images leave the batch shorter: match what came back to the requested indices in order.
      const kept: number[] = [];
      let j = 0;
      for (const k of indices) {
        if (j < loaded.ids.length && loaded.ids[j] === split.id(base(k))) {
          kept.push(k);
          j++;
        }
      }
      const [, h, w, c] = loaded.shape;
      const per = h * w * c;
      const x = new Float32Array(loaded.x.length);
      const out: Batch = { ...loaded, x, ids: kept.map(id) };
      const parts: PartLocation[][] = [];
      const boxes: (Rect | null)[] = [];
      kept.forEach((k, b) => {
        const one: Batch = {
          x: loaded.x.subarray(b * per, (b + 1) * per),
          shape: [1, h, w, c],
          labels: loaded.labels.subarray(b, b + 1),
          ids: [loaded.ids[b]!],
          ...(loaded.parts ? { parts: [loaded.parts[b]!] } : {}),
          ...(loaded.boxes ? { boxes: [loaded.boxes[b]!] } : {}),
        };
        const aug = augmentBatch(
          one,
          input,
          [deriveSeed(seed, k)],
          OFFLINE_PIPELINES[copy(k) % OFFLINE_PIPELINES.length],
        );
        x.set(aug.x, b * per);
        if (aug.parts) parts.push(aug.parts[0]!);
        if (aug.boxes) boxes.push(aug.boxes[0]!);
      });
      if (loaded.parts) out.parts = parts;
      if (loaded.boxes) out.boxes = boxes;
      return out;
    },
  };
}
