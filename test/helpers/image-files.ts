// Image files for fixtures: a minimal PNG writer (every colour type on request) and mozjpeg's encoder in Node.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { deflateSync } from 'node:zlib';
import encodeJpegWasm, { init as initEncoder } from '@jsquash/jpeg/encode.js';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const byte of b) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

export type PngKind = 'grey' | 'rgb' | 'rgba' | 'palette';

/**
 * A PNG of the given colour type. `pixels` holds 1 (grey), 3 (rgb) or 4 (rgba) bytes per pixel;
 * palette: 3 bytes per pixel, at most 256 distinct colours.
 */
export function png(kind: PngKind, width: number, height: number, pixels: ArrayLike<number>): Buffer {
  const per = { grey: 1, rgb: 3, rgba: 4, palette: 3 }[kind];
  const colourType = { grey: 0, rgb: 2, rgba: 6, palette: 3 }[kind];
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.writeUInt8(8, 8);
  ihdr.writeUInt8(colourType, 9);
  const chunks = [chunk('IHDR', ihdr)];
  const rowBytes = kind === 'palette' ? width : width * per;
  const raw = Buffer.alloc(height * (rowBytes + 1));
  if (kind === 'palette') {
    const colours: string[] = [];
    for (let i = 0; i < width * height; i++) {
      const key = `${pixels[3 * i]},${pixels[3 * i + 1]},${pixels[3 * i + 2]}`;
      let k = colours.indexOf(key);
      if (k < 0) k = colours.push(key) - 1;
      raw[Math.floor(i / width) * (rowBytes + 1) + 1 + (i % width)] = k;
    }
    chunks.push(chunk('PLTE', Buffer.from(colours.flatMap((c) => c.split(',').map(Number)))));
  } else {
    for (let y = 0; y < height; y++) {
      for (let i = 0; i < rowBytes; i++) raw[y * (rowBytes + 1) + 1 + i] = pixels[y * rowBytes + i]!;
    }
  }
  chunks.push(chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks]);
}

let encoderReady: Promise<void> | undefined;

/** A JPEG of RGB pixels (quality 100, so decoded values stay within a few levels). */
export async function jpeg(
  width: number,
  height: number,
  rgb: ArrayLike<number>,
  quality = 100,
): Promise<Buffer> {
  encoderReady ??= (async () => {
    const wasm = createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm');
    const wasmApi = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<object> } })
      .WebAssembly;
    await (initEncoder as unknown as (m: object) => Promise<void>)(
      await wasmApi.compile(await readFile(wasm)),
    );
  })();
  await encoderReady;
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    data[4 * i] = rgb[3 * i]!;
    data[4 * i + 1] = rgb[3 * i + 1]!;
    data[4 * i + 2] = rgb[3 * i + 2]!;
    data[4 * i + 3] = 255;
  }
  const image = { data, width, height, colorSpace: 'srgb' } as unknown as Parameters<
    typeof encodeJpegWasm
  >[0];
  return Buffer.from(await encodeJpegWasm(image, { quality }));
}

/** A flat-colour RGB image (JPEG keeps flat colours nearly exact). */
export function flat(width: number, height: number, colour: readonly [number, number, number]): number[] {
  return Array.from({ length: width * height }, () => [...colour]).flat();
}
