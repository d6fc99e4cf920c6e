// Request bodies to the exact tensor the backend expects: tensor frames and JSON, or images (decoded,
// resized and normalised as the model manifest says).
import {
  asModelInput,
  type ClassifyOptions,
  ClassifyRequest,
  decodeBase64,
  decodeFrame,
  decodeJson,
  type ModelManifest,
  TENSOR_MEDIA_TYPE,
  TensorFormatError,
  type WireTensor,
  zodApiError,
} from '@protopool/shared';
import { EdgeError } from './errors';
import { decodeToInput, ImageDecodeError } from './image';

export interface ParsedInput {
  tensor: WireTensor;
  bodyOptions: Partial<ClassifyOptions>;
}

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png']);

function tensorFrom(decode: () => WireTensor, manifest: ModelManifest): WireTensor {
  try {
    return asModelInput(decode(), manifest.input);
  } catch (err) {
    if (err instanceof TensorFormatError) throw new EdgeError('bad_request', err.message);
    throw err;
  }
}

export async function imageToTensor(
  bytes: Uint8Array,
  type: string,
  manifest: ModelManifest,
): Promise<WireTensor> {
  const { height, width, channels } = manifest.input;
  try {
    const data = await decodeToInput(bytes, manifest.input);
    return { dtype: 'float32', shape: [1, height, width, channels], data };
  } catch (err) {
    if (err instanceof ImageDecodeError) {
      throw new EdgeError('bad_request', `cannot read the ${type} image: ${err.message}`);
    }
    throw err;
  }
}

export async function readInput(req: Request, manifest: ModelManifest): Promise<ParsedInput> {
  const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const limits = { maxElements: manifest.input.height * manifest.input.width * manifest.input.channels };
  if (type === TENSOR_MEDIA_TYPE) {
    const bytes = new Uint8Array(await req.arrayBuffer());
    return { tensor: tensorFrom(() => decodeFrame(bytes, limits), manifest), bodyOptions: {} };
  }
  if (IMAGE_TYPES.has(type)) {
    return {
      tensor: await imageToTensor(new Uint8Array(await req.arrayBuffer()), type, manifest),
      bodyOptions: {},
    };
  }
  if (type === 'multipart/form-data') {
    const form = await req.formData().catch(() => null);
    const file = form?.get('image');
    if (!file || typeof file === 'string') {
      throw new EdgeError('bad_request', 'multipart body needs a file field named "image"');
    }
    const blob = file as unknown as Blob;
    const fileType = (blob.type || '').toLowerCase();
    if (!IMAGE_TYPES.has(fileType)) {
      throw new EdgeError(
        'unsupported_media_type',
        `image must be image/jpeg or image/png, got "${fileType || 'none'}"`,
      );
    }
    return {
      tensor: await imageToTensor(new Uint8Array(await blob.arrayBuffer()), fileType, manifest),
      bodyOptions: {},
    };
  }
  if (type === 'application/json') {
    const json = await req.json().catch(() => {
      throw new EdgeError('bad_request', 'body is not valid JSON');
    });
    const parsed = ClassifyRequest.safeParse(json);
    if (!parsed.success) {
      const e = zodApiError(parsed.error, 'request body').error;
      throw new EdgeError('bad_request', e.message, e.details);
    }
    const { image, tensor, options } = parsed.data;
    if (image) {
      const bytes = decodeBase64(image.data);
      if (!bytes)
        throw new EdgeError('bad_request', 'Invalid request body: image.data: not canonical base64');
      return { tensor: await imageToTensor(bytes, image.mediaType, manifest), bodyOptions: options };
    }
    return { tensor: tensorFrom(() => decodeJson(tensor, limits), manifest), bodyOptions: options };
  }
  throw new EdgeError(
    'unsupported_media_type',
    `content-type must be image/jpeg, image/png, multipart/form-data, application/json or ${TENSOR_MEDIA_TYPE}; got "${type || 'none'}"`,
  );
}
