// A classify request's body to the model's input tensor and the options it carries: the media types both
// tiers accept, parsed once, so the edge and the backend refuse the same bodies with the same words.
//
//   image/jpeg, image/png     the encoded image           → decoded by the caller's `decodeImage`
//   multipart/form-data       a file field named "image"  → as above (a browser's <form>)
//   application/json          ClassifyRequest: { image: {mediaType, data: base64} | tensor, options }
//   application/x-protopool-tensor   a tensor frame (wire.ts)
//
// Tensors must already be the model's normalised input ([h, w, c] or [1, h, w, c], float32); images are
// decoded and normalised by the manifest's `input` (image.ts), which is why decoding is the caller's: the
// Worker must initialise its wasm codec its own way.

import { decodeBase64 } from './base64';
import { ImageDecodeError, ProtocolError } from './errors';
import type { InputSpec } from './manifest';
import { type ClassifyOptions, ClassifyRequest, type ImageMediaType } from './request';
import {
  asModelInput,
  decodeFrame,
  decodeJson,
  TENSOR_MEDIA_TYPE,
  TensorFormatError,
  type WireTensor,
} from './wire';

export const IMAGE_MEDIA_TYPES: readonly ImageMediaType[] = ['image/jpeg', 'image/png'];
export const CLASSIFY_MEDIA_TYPES = [
  ...IMAGE_MEDIA_TYPES,
  'multipart/form-data',
  'application/json',
  TENSOR_MEDIA_TYPE,
] as const;

export interface ClassifyBody {
  tensor: WireTensor;
  /** The body's own options (JSON bodies only); the query overrides them (`resolveOptions`). */
  options: Partial<ClassifyOptions>;
}

export interface BodyContext {
  /** The model's input: tensors must match it, images are fitted to it. */
  input: InputSpec;
  /** Encoded image bytes to the normalised input (`imageToInput` once the runtime's codecs are ready). */
  decodeImage(bytes: Uint8Array): Promise<Float32Array>;
}

/** `image/png; charset=x` → `image/png`; absent → ''. */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

function isImageType(type: string): type is ImageMediaType {
  return (IMAGE_MEDIA_TYPES as readonly string[]).includes(type);
}

/** Parses a classify body; every refusal is a `ProtocolError` whose message names what was wrong. */
export async function parseClassifyBody(
  contentType: string | null | undefined,
  body: Uint8Array,
  ctx: BodyContext,
): Promise<ClassifyBody> {
  const type = mediaTypeOf(contentType);
  const limits = { maxElements: ctx.input.height * ctx.input.width * ctx.input.channels };
  if (type === TENSOR_MEDIA_TYPE)
    return { tensor: modelInput(() => decodeFrame(body, limits), ctx), options: {} };
  if (isImageType(type)) return { tensor: await imageInput(body, type, ctx), options: {} };
  if (type === 'multipart/form-data')
    return { tensor: await multipartInput(contentType!, body, ctx), options: {} };
  if (type === 'application/json') {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new ProtocolError('bad_request', 'body is not valid JSON');
    }
    const parsed = ClassifyRequest.safeParse(json);
    if (!parsed.success) throw ProtocolError.fromZod(parsed.error, 'request body');
    const { image, tensor, options } = parsed.data;
    if (image) {
      const bytes = decodeBase64(image.data);
      if (!bytes)
        throw new ProtocolError('bad_request', 'Invalid request body: image.data: not canonical base64');
      return { tensor: await imageInput(bytes, image.mediaType, ctx), options };
    }
    return { tensor: modelInput(() => decodeJson(tensor!, limits), ctx), options };
  }
  throw new ProtocolError(
    'unsupported_media_type',
    `content-type must be ${CLASSIFY_MEDIA_TYPES.join(', ')}; got "${type || 'none'}"`,
  );
}

function modelInput(decode: () => WireTensor, ctx: BodyContext): WireTensor {
  try {
    return asModelInput(decode(), ctx.input);
  } catch (err) {
    if (err instanceof TensorFormatError) throw new ProtocolError('bad_request', err.message);
    throw err;
  }
}

async function imageInput(bytes: Uint8Array, type: ImageMediaType, ctx: BodyContext): Promise<WireTensor> {
  const { height, width, channels } = ctx.input;
  try {
    return { dtype: 'float32', shape: [1, height, width, channels], data: await ctx.decodeImage(bytes) };
  } catch (err) {
    if (err instanceof ImageDecodeError)
      throw new ProtocolError('bad_request', `cannot read the ${type} image: ${err.message}`);
    throw err;
  }
}

// The web platform's own multipart parser (Response.formData), present in workerd and in Node ≥ 18.
async function multipartInput(contentType: string, body: Uint8Array, ctx: BodyContext): Promise<WireTensor> {
  // A view on a plain ArrayBuffer, as DOM's BodyInit types want (a body is never a SharedArrayBuffer).
  const form = await new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { 'content-type': contentType },
  })
    .formData()
    .catch(() => null);
  const file = form?.get('image');
  if (!file || typeof file === 'string') {
    throw new ProtocolError('bad_request', 'multipart body needs a file field named "image"');
  }
  const type = (file.type || '').toLowerCase();
  if (!isImageType(type)) {
    throw new ProtocolError(
      'unsupported_media_type',
      `image must be ${IMAGE_MEDIA_TYPES.join(' or ')}, got "${type || 'none'}"`,
    );
  }
  return imageInput(new Uint8Array(await file.arrayBuffer()), type, ctx);
}
