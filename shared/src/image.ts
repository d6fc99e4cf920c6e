// Image maths shared by the edge and the backend: decode (JPEG/PNG), channel conversion, bilinear fit to the model input, normalise.
// No Node imports here (no fs, no Buffer): the Worker must turn the same bytes into the same tensor bytes.
import decodeJpeg from '@jsquash/jpeg/decode.js';
import UPNG from 'upng-js';
import { ImageDecodeError } from './errors';

/** 8-bit pixels, row-major, interleaved channels. */
export interface Pixels {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** A rectangle in continuous pixel coordinates (pixel (i, j) covers [i, i+1) × [j, j+1)). */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export type ResizeMode = 'crop' | 'letterbox' | 'stretch';

export { ImageDecodeError };

export type ImageFormat = 'jpeg' | 'png';

export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  return undefined;
}

// mozjpeg reports its reason on stderr and then exits; the Node/Worker init routes that line here.
let lastJpegMessage = '';
export function recordJpegMessage(line: string): void {
  lastJpegMessage = line;
}

/** The alpha channel is dropped, not composited: what PIL's convert('RGB') does, so published pipelines agree. */
function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, n: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = rgba[4 * i]!;
    out[3 * i + 1] = rgba[4 * i + 1]!;
    out[3 * i + 2] = rgba[4 * i + 2]!;
  }
  return out;
}

/**
 * Largest image a request may carry (4096×4096): a few hundred bytes of JPEG or PNG can declare a size
 * whose decoding costs seconds and gigabytes, so the API refuses it from the header, before decoding.
 */
export const MAX_INPUT_PIXELS = 4096 * 4096;
/** Largest image decoded at all (datasets too): 64 MP is beyond any photo a 224 px model is trained on. */
export const MAX_DECODE_PIXELS = 8192 * 8192;

/**
 * Walks the PNG chunk list: every chunk must lie inside the file and IEND must come. upng-js trusts chunk
 * lengths (a corrupt one makes it copy billions of bytes, minutes of CPU), so they are checked first.
 */
function checkPngChunks(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (offset + 12 + length > bytes.length)
      throw new ImageDecodeError(
        `corrupt PNG (chunk "${type.replace(/[^\x20-\x7e]/g, '?')}" at byte ${offset} runs past the end of the file)`,
      );
    if (type === 'IEND') return;
    offset += 12 + length;
  }
  throw new ImageDecodeError('corrupt PNG (truncated: no IEND chunk)');
}

/** Width and height as the file's header declares them (PNG IHDR, JPEG SOFn), or undefined if not found. */
export function declaredSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const u16 = (i: number) => (bytes[i]! << 8) | bytes[i + 1]!;
  const format = sniffFormat(bytes);
  if (format === 'png') {
    if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return undefined;
    return { width: u16(16) * 65536 + u16(18), height: u16(20) * 65536 + u16(22) };
  }
  if (format === 'jpeg') {
    for (let i = 2; i + 8 < bytes.length; ) {
      if (bytes[i] !== 0xff) return undefined;
      const m = bytes[i + 1]!;
      if (m === 0xff) i++;
      else if (m === 0x01 || (m >= 0xd0 && m <= 0xd9)) i += 2;
      else if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc)
        return { width: u16(i + 7), height: u16(i + 5) };
      else i += 2 + u16(i + 2);
    }
  }
  return undefined;
}

/**
 * Decodes JPEG (grey or colour) or PNG (grey, grey+alpha, RGB, RGBA, palette; any bit depth) to RGB or grey.
 * JPEG needs its wasm initialised first (image-node.ts in Node; the Worker imports the module itself).
 * Images declaring more than `maxPixels` are refused before decoding.
 */
export async function decodeImage(
  bytes: Uint8Array,
  channels: 1 | 3 = 3,
  maxPixels = MAX_DECODE_PIXELS,
): Promise<Pixels> {
  const format = sniffFormat(bytes);
  if (!format) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new ImageDecodeError(`not a JPEG or PNG file (starts with ${head || 'nothing'})`);
  }
  const size = declaredSize(bytes);
  if (!size) throw new ImageDecodeError(`corrupt ${format.toUpperCase()} (no image size in its header)`);
  if (size.width * size.height > maxPixels) {
    throw new ImageDecodeError(
      `image of ${size.width}×${size.height} pixels is too large (at most ${maxPixels} pixels)`,
    );
  }
  // Both decoders want a standalone ArrayBuffer (copied: a Node Buffer's `slice` would share a pooled one).
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const buffer = copy.buffer;
  let rgb: Pixels;
  if (format === 'jpeg') {
    lastJpegMessage = '';
    let image: { width: number; height: number; data: Uint8ClampedArray };
    try {
      image = await decodeJpeg(buffer);
    } catch (err) {
      throw new ImageDecodeError(
        `corrupt JPEG (${lastJpegMessage || (err instanceof Error ? err.message : String(err))})`,
      );
    }
    if (!image || image.width === 0 || image.height === 0)
      throw new ImageDecodeError('JPEG with no image data');
    rgb = {
      width: image.width,
      height: image.height,
      channels: 3,
      data: rgbaToRgb(image.data, image.width * image.height),
    };
  } else {
    checkPngChunks(bytes);
    let frames: ArrayBuffer[];
    let width: number;
    let height: number;
    try {
      const png = UPNG.decode(buffer);
      width = png.width;
      height = png.height;
      frames = UPNG.toRGBA8(png);
    } catch (err) {
      throw new ImageDecodeError(`corrupt PNG (${err instanceof Error ? err.message : String(err)})`);
    }
    const first = frames[0];
    if (!first || width === 0 || height === 0 || first.byteLength !== width * height * 4) {
      throw new ImageDecodeError('corrupt PNG (no complete image data)');
    }
    rgb = { width, height, channels: 3, data: rgbaToRgb(new Uint8Array(first), width * height) };
  }
  return channels === 3 ? rgb : toGrey(rgb);
}

/** ITU-R 601 luma, rounded: the weights PIL's convert('L') uses. */
export function toGrey(p: Pixels): Pixels {
  if (p.channels === 1) return p;
  const n = p.width * p.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.round(0.299 * p.data[3 * i]! + 0.587 * p.data[3 * i + 1]! + 0.114 * p.data[3 * i + 2]!);
  }
  return { width: p.width, height: p.height, channels: 1, data: out };
}

export function toRgb(p: Pixels): Pixels {
  if (p.channels === 3) return p;
  const n = p.width * p.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = p.data[i]!;
  return { width: p.width, height: p.height, channels: 3, data: out };
}

/** dst = src · scale + offset, per axis: how source coordinates land in the model input. */
export interface Placement {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
  /** The part of the output that holds image (letterbox leaves bands outside it). */
  content: Rect;
}

/**
 * Where `region` of a source image goes in a width×height output. crop: scale to cover, centre, cut the
 * overflow; letterbox: scale to fit, centre, pad; stretch: scale each axis independently.
 */
export function placement(region: Rect, width: number, height: number, mode: ResizeMode): Placement {
  const rw = region.x1 - region.x0;
  const rh = region.y1 - region.y0;
  let scaleX = width / rw;
  let scaleY = height / rh;
  if (mode !== 'stretch') {
    const s = mode === 'crop' ? Math.max(scaleX, scaleY) : Math.min(scaleX, scaleY);
    scaleX = s;
    scaleY = s;
  }
  // Centre the scaled region in the output.
  const offsetX = (width - rw * scaleX) / 2 - region.x0 * scaleX;
  const offsetY = (height - rh * scaleY) / 2 - region.y0 * scaleY;
  const content: Rect =
    mode === 'letterbox'
      ? {
          x0: Math.max(0, (width - rw * scaleX) / 2),
          y0: Math.max(0, (height - rh * scaleY) / 2),
          x1: Math.min(width, (width + rw * scaleX) / 2),
          y1: Math.min(height, (height + rh * scaleY) / 2),
        }
      : { x0: 0, y0: 0, x1: width, y1: height };
  return { scaleX, scaleY, offsetX, offsetY, content };
}

export function placePoint(p: Placement, x: number, y: number): { x: number; y: number } {
  return { x: x * p.scaleX + p.offsetX, y: y * p.scaleY + p.offsetY };
}

export function placeRect(p: Placement, r: Rect): Rect {
  return {
    x0: r.x0 * p.scaleX + p.offsetX,
    y0: r.y0 * p.scaleY + p.offsetY,
    x1: r.x1 * p.scaleX + p.offsetX,
    y1: r.y1 * p.scaleY + p.offsetY,
  };
}

/**
 * Bilinear resampling of `src` into a width×height float image (values 0..255) through `p`, with half-pixel
 * centres (tf.image.resizeBilinear's halfPixelCenters; no antialiasing) and edge clamping. Output pixels
 * outside `p.content` (letterbox bands) get `fill`.
 */
export function resample(src: Pixels, width: number, height: number, p: Placement, fill = 0): Float32Array {
  const c = src.channels;
  const out = new Float32Array(width * height * c);
  const sw = src.width;
  const sh = src.height;
  const d = src.data;
  // Per-column source taps, computed once.
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const sx = Math.min(Math.max((x + 0.5 - p.offsetX) / p.scaleX - 0.5, 0), sw - 1);
    x0s[x] = Math.floor(sx);
    x1s[x] = Math.min(x0s[x]! + 1, sw - 1);
    fxs[x] = sx - x0s[x]!;
  }
  const { content } = p;
  for (let y = 0; y < height; y++) {
    const inRows = y + 0.5 >= content.y0 && y + 0.5 < content.y1;
    const sy = Math.min(Math.max((y + 0.5 - p.offsetY) / p.scaleY - 0.5, 0), sh - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, sh - 1);
    const fy = sy - y0;
    const r0 = y0 * sw;
    const r1 = y1 * sw;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * c;
      if (!inRows || x + 0.5 < content.x0 || x + 0.5 >= content.x1) {
        for (let k = 0; k < c; k++) out[o + k] = fill;
        continue;
      }
      const a = x0s[x]!;
      const b = x1s[x]!;
      const fx = fxs[x]!;
      for (let k = 0; k < c; k++) {
        const top = d[(r0 + a) * c + k]! * (1 - fx) + d[(r0 + b) * c + k]! * fx;
        const bottom = d[(r1 + a) * c + k]! * (1 - fx) + d[(r1 + b) * c + k]! * fx;
        out[o + k] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

export interface Fitted {
  /** 0..255 floats, height×width×channels. */
  data: Float32Array;
  placement: Placement;
}

/** Fits `region` (default: the whole image) of `src` to the model input size. */
export function fitImage(
  src: Pixels,
  size: { width: number; height: number },
  mode: ResizeMode,
  region?: Rect,
  fill = 0,
): Fitted {
  const r = clampRect(region ?? { x0: 0, y0: 0, x1: src.width, y1: src.height }, src.width, src.height);
  const p = placement(r, size.width, size.height, mode);
  // Cropping to a region must not pull in pixels beyond it: clamp sampling to the region's pixels.
  const data =
    region && (r.x0 > 0 || r.y0 > 0 || r.x1 < src.width || r.y1 < src.height)
      ? resampleRegion(src, r, size, p, fill)
      : resample(src, size.width, size.height, p, fill);
  return { data, placement: p };
}

function resampleRegion(
  src: Pixels,
  r: Rect,
  size: { width: number; height: number },
  p: Placement,
  fill: number,
): Float32Array {
  // Copy the whole pixels the region touches, then resample that sub-image with shifted coordinates.
  const ix0 = Math.floor(r.x0);
  const iy0 = Math.floor(r.y0);
  const ix1 = Math.max(ix0 + 1, Math.ceil(r.x1));
  const iy1 = Math.max(iy0 + 1, Math.ceil(r.y1));
  const w = ix1 - ix0;
  const h = iy1 - iy0;
  const c = src.channels;
  const sub = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    const from = ((iy0 + y) * src.width + ix0) * c;
    sub.set(src.data.subarray(from, from + w * c), y * w * c);
  }
  const shifted: Placement = {
    ...p,
    offsetX: p.offsetX + ix0 * p.scaleX,
    offsetY: p.offsetY + iy0 * p.scaleY,
  };
  return resample({ width: w, height: h, channels: c, data: sub }, size.width, size.height, shifted, fill);
}

export function clampRect(r: Rect, width: number, height: number): Rect {
  const x0 = Math.min(Math.max(r.x0, 0), width - 1);
  const y0 = Math.min(Math.max(r.y0, 0), height - 1);
  return {
    x0,
    y0,
    x1: Math.max(Math.min(r.x1, width), x0 + 1),
    y1: Math.max(Math.min(r.y1, height), y0 + 1),
  };
}

/** (v/255 − mean[c]) / std[c] per channel, into `out` at `offset`. */
export function normalise(
  data: Float32Array,
  mean: readonly number[],
  std: readonly number[],
  out: Float32Array = new Float32Array(data.length),
  offset = 0,
): Float32Array {
  const c = mean.length;
  for (let i = 0; i < data.length; i++) {
    const k = i % c;
    out[offset + i] = (data[i]! / 255 - mean[k]!) / std[k]!;
  }
  return out;
}

/** Running per-channel sums of 0..1 pixel values, for the manifest's mean/std. */
export class ChannelStats {
  private readonly sum: number[];
  private readonly sq: number[];
  private count = 0;
  constructor(readonly channels: number) {
    this.sum = new Array(channels).fill(0);
    this.sq = new Array(channels).fill(0);
  }
  add(data: Float32Array): void {
    const c = this.channels;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]! / 255;
      this.sum[i % c]! += v;
      this.sq[i % c]! += v * v;
    }
    this.count += data.length / c;
  }
  result(): { mean: number[]; std: number[] } {
    if (this.count === 0) return { mean: this.sum.map(() => 0.5), std: this.sum.map(() => 0.25) };
    const mean = this.sum.map((s) => s / this.count);
    // A constant channel would divide by zero; 1e-3 keeps normalisation finite.
    const std = this.sq.map((s, k) => Math.max(Math.sqrt(Math.max(s / this.count - mean[k]! ** 2, 0)), 1e-3));
    return { mean, std };
  }
}

/**
 * The model's input from image bytes, exactly as the manifest describes it: decode, convert channels,
 * fit to height×width by the manifest's resize mode, normalise. The edge and the backend both call this,
 * so the same bytes give the same tensor bytes on both sides.
 */
export async function imageToInput(
  bytes: Uint8Array,
  input: {
    height: number;
    width: number;
    channels: 1 | 3;
    resize: ResizeMode;
    mean: readonly number[];
    std: readonly number[];
  },
): Promise<Float32Array> {
  const pixels = await decodeImage(bytes, input.channels, MAX_INPUT_PIXELS);
  const fitted = fitImage(pixels, { width: input.width, height: input.height }, input.resize);
  return normalise(fitted.data, input.mean, input.std);
}
