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
