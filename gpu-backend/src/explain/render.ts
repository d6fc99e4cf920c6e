// PNG pictures of evidence: prototype source patches (cropped from the training image, enlarged).
import type { Box, InputSpec } from '@protopool/shared';
import UPNG from 'upng-js';

/** 8-bit RGBA pixels of a normalised HWC image: x·std + mean, back to [0,255]. */
export function denormalise(x: Float32Array, input: InputSpec): Uint8Array {
  const { height, width, channels, mean, std } = input;
  const out = new Uint8Array(height * width * 4);
  for (let p = 0; p < height * width; p++) {
    for (let c = 0; c < 3; c++) {
      const ch = channels === 1 ? 0 : c;
      const v = (x[p * channels + ch]! * std[ch]! + mean[ch]!) * 255;
      out[p * 4 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
    out[p * 4 + 3] = 255;
  }
  return out;
}

/** Crops `box` out of an RGBA image and enlarges it (nearest neighbour) so its short side is ≥ minSide. */
export function cropEnlarge(rgba: Uint8Array, width: number, box: Box, minSide = 96) {
  const bw = box.x1 - box.x0;
  const bh = box.y1 - box.y0;
  const scale = Math.max(1, Math.ceil(minSide / Math.min(bw, bh)));
  const ow = bw * scale;
  const oh = bh * scale;
  const out = new Uint8Array(ow * oh * 4);
  for (let y = 0; y < oh; y++) {
    const sy = box.y0 + Math.floor(y / scale);
    for (let x = 0; x < ow; x++) {
      const sx = box.x0 + Math.floor(x / scale);
      out.set(rgba.subarray((sy * width + sx) * 4, (sy * width + sx) * 4 + 4), (y * ow + x) * 4);
    }
  }
  return { rgba: out, width: ow, height: oh };
}

export function encodePng(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const buf = rgba.buffer.slice(rgba.byteOffset, rgba.byteOffset + rgba.byteLength) as ArrayBuffer;
  return new Uint8Array(UPNG.encode([buf], width, height, 0));
}

/** The picture of a prototype: its source patch, from the normalised source image. */
export function prototypePatchPng(image: Float32Array, input: InputSpec, box: Box): Uint8Array {
  const crop = cropEnlarge(denormalise(image, input), input.width, box);
  return encodePng(crop.rgba, crop.width, crop.height);
}

export interface Rgba {
  rgba: Uint8Array;
  width: number;
  height: number;
}

/** Nearest-neighbour enlargement by an integer factor (keeps pixels crisp for small inputs). */
export function enlarge(img: Rgba, factor: number): Rgba {
  const w = img.width * factor;
  const h = img.height * factor;
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (Math.floor(y / factor) * img.width + Math.floor(x / factor)) * 4;
      out.set(img.rgba.subarray(s, s + 4), (y * w + x) * 4);
    }
  }
  return { rgba: out, width: w, height: h };
}

/** Blue → cyan → yellow → red, for 0..1. */
function colour(v: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, v));
  return [
    Math.round(255 * Math.min(1, 2 * t)),
    Math.round(255 * (1 - Math.abs(2 * t - 1))),
    Math.round(255 * Math.max(0, 1 - 2 * t)),
  ];
}

/**
 * The input with a prototype's activation heatmap (already upsampled to the input size, any range)
 * blended over it, and its box outlined — what an explanation points at.
 */
export function overlay(img: Rgba, heat: ArrayLike<number>, box: Box, alpha = 0.45): Rgba {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < heat.length; i++) {
    lo = Math.min(lo, heat[i]!);
    hi = Math.max(hi, heat[i]!);
  }
  const out = Uint8Array.from(img.rgba);
  for (let p = 0; p < img.width * img.height; p++) {
    const c = colour(hi > lo ? (heat[p]! - lo) / (hi - lo) : 0);
    for (let k = 0; k < 3; k++) out[p * 4 + k] = Math.round((1 - alpha) * out[p * 4 + k]! + alpha * c[k]!);
  }
  const mark = (x: number, y: number) => {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    out.set([255, 212, 0, 255], (y * img.width + x) * 4);
  };
  for (let x = box.x0; x < box.x1; x++) {
    mark(x, box.y0);
    mark(x, box.y1 - 1);
  }
  for (let y = box.y0; y < box.y1; y++) {
    mark(box.x0, y);
    mark(box.x1 - 1, y);
  }
  return { rgba: out, width: img.width, height: img.height };
}

/** Images side by side (top-aligned) with a white gap; or stacked when `vertical`. */
export function compose(images: Rgba[], gap = 8, vertical = false): Rgba {
  const width = vertical
    ? Math.max(...images.map((i) => i.width))
    : images.reduce((s, i) => s + i.width, 0) + gap * (images.length - 1);
  const height = vertical
    ? images.reduce((s, i) => s + i.height, 0) + gap * (images.length - 1)
    : Math.max(...images.map((i) => i.height));
  const out = new Uint8Array(width * height * 4).fill(255);
  let offset = 0;
  for (const img of images) {
    for (let y = 0; y < img.height; y++) {
      const row = img.rgba.subarray(y * img.width * 4, (y + 1) * img.width * 4);
      const [ox, oy] = vertical ? [0, offset + y] : [offset, y];
      out.set(row, (oy * width + ox) * 4);
    }
    offset += (vertical ? img.height : img.width) + gap;
  }
  return { rgba: out, width, height };
}

export function decodePng(bytes: Uint8Array): Rgba {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const img = UPNG.decode(buf);
  return { rgba: new Uint8Array(UPNG.toRGBA8(img)[0]!), width: img.width, height: img.height };
}

/** Fits an image into a size×size square (nearest neighbour, aspect kept, white margins). */
export function fitSquare(img: Rgba, size: number): Rgba {
  const scale = Math.min(size / img.width, size / img.height);
  const w = Math.max(1, Math.round(img.width * scale));
  const h = Math.max(1, Math.round(img.height * scale));
  const out = new Uint8Array(size * size * 4).fill(255);
  const ox = Math.floor((size - w) / 2);
  const oy = Math.floor((size - h) / 2);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = Math.min(img.width - 1, Math.floor(x / scale));
      const sy = Math.min(img.height - 1, Math.floor(y / scale));
      out.set(
        img.rgba.subarray((sy * img.width + sx) * 4, (sy * img.width + sx) * 4 + 4),
        ((oy + y) * size + ox + x) * 4,
      );
    }
  }
  return { rgba: out, width: size, height: size };
}
