// Images to the model's input inside the Worker: the shared pipeline, with mozjpeg's wasm bundled by wrangler.

import mozjpeg from '@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm';
import { init as initJpeg } from '@jsquash/jpeg/decode.js';
import type { InputSpec } from '@protopool/shared';
import { ImageDecodeError, imageToInput, recordJpegMessage } from '@protopool/shared/image';

let ready: Promise<void> | undefined;

type InitWithModule = (module: WebAssembly.Module, overrides: object) => Promise<void>;

/** Initialises the JPEG decoder once per isolate (Workers cannot fetch wasm at run time). */
function codecs(): Promise<void> {
  ready ??= (initJpeg as unknown as InitWithModule)(mozjpeg, {
    print: recordJpegMessage,
    printErr: recordJpegMessage,
  });
  return ready;
}

export { ImageDecodeError };

export async function decodeToInput(bytes: Uint8Array, input: InputSpec): Promise<Float32Array> {
  await codecs();
  return imageToInput(bytes, input);
}
