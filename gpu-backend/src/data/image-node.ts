// Node side of image.ts: mozjpeg's wasm compiled from node_modules, and image files read with errors naming them.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { init as initJpeg } from '@jsquash/jpeg/decode.js';
import { DataError } from './errors';
import { decodeImage, ImageDecodeError, type Pixels, recordJpegMessage } from './image';

let ready: Promise<void> | undefined;

// The backend's tsconfig has no DOM/wasm lib; this is the one call needed.
const wasmApi = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<object> } })
  .WebAssembly;
type InitWithModule = (module: object, overrides: object) => Promise<void>;

/** Compiles the JPEG decoder once per process (its default loader fetches a URL, which Node cannot). */
export function initImageCodecs(): Promise<void> {
  ready ??= (async () => {
    const wasm = createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm');
    const module = await wasmApi.compile(await readFile(wasm));
    // print/printErr: mozjpeg's reason for refusing a file becomes part of our error instead of stderr noise.
    await (initJpeg as unknown as InitWithModule)(module, {
      print: recordJpegMessage,
      printErr: recordJpegMessage,
    });
  })();
  return ready;
}

export async function readImageBytes(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new DataError(file, `cannot read image (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Reads and decodes one image; any failure is a DataError naming the file. */
export async function readImage(file: string, channels: 1 | 3 = 3): Promise<Pixels> {
  const bytes = await readImageBytes(file);
  await initImageCodecs();
  try {
    return await decodeImage(bytes, channels);
  } catch (err) {
    if (err instanceof ImageDecodeError) throw new DataError(file, err.message);
    throw err;
  }
}
