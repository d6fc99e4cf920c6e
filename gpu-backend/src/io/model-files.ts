// A trained model on disk: features (tf.io layers format), head weights, manifest with checksums.
//
//   model.json + weights.bin   the features network (backbone + add-on), TF.js layers format
//   head.json + head.bin       prototypes, slot logits, last layer (tf.io weight specs + data)
//   manifest.json              the shared ModelManifest: version = sha256 of the weights, file checksums
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelManifest, zodIssueLines } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import type { HeadConfig } from '../model/head';
import { ProtoPoolHead } from '../model/head';
import { type ModelConfig, ProtoPoolModel } from '../model/protopool';
import { readJson, sha256 } from './files';
import { encodeTensors, layersWeights } from './weights-encoding';

export class ModelFileError extends Error {
  override name = 'ModelFileError';
}

/** The bytes as one ArrayBuffer of their own, copied only if they are not one already (a large file read is). */
function wholeBuffer(parts: Uint8Array[]): ArrayBuffer {
  const one = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  if (one.byteOffset === 0 && one.byteLength === one.buffer.byteLength) return one.buffer as ArrayBuffer;
  return one.buffer.slice(one.byteOffset, one.byteOffset + one.byteLength) as ArrayBuffer;
}

/** Serialises a layers model to { model.json, weights.bin } contents: what `model.save` writes, byte for byte. */
export function serialiseLayers(model: tf.LayersModel): { json: string; weights: Uint8Array } {
  const { data, specs } = encodeTensors(layersWeights(model));
  const json = JSON.stringify({
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    modelTopology: model.toJSON(null, false),
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  });
  return { json, weights: data };
}

/** Loads a layers model from a directory holding model.json and its weight files (no network, no tfjs-node). */
export async function loadLayersFromDir(dir: string, modelFile = 'model.json'): Promise<tf.LayersModel> {
  const path = join(dir, modelFile);
  const json = (await readJson(path)) as {
    modelTopology?: object;
    weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new ModelFileError(`${path}: not a TF.js layers model (needs modelTopology and weightsManifest)`);
  }
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const buffers: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) buffers.push(await readFile(join(dir, p)));
  }
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: wholeBuffer(buffers),
    }),
  );
}

export function serialiseHead(head: ProtoPoolHead): { json: string; data: Uint8Array } {
  const { data, specs } = encodeTensors([
    { name: 'prototypes', tensor: head.prototypes },
    { name: 'slot_logits', tensor: head.slotLogits },
    { name: 'last_layer', tensor: head.lastLayer },
  ]);
  return { json: JSON.stringify({ config: head.config, weights: specs }), data };
}

export function decodeHead(
  json: { config: HeadConfig; weights: tf.io.WeightsManifestEntry[] },
  data: Uint8Array,
): ProtoPoolHead {
  const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const { classes: c, prototypes: m, slotsPerClass: k, depth: d } = json.config;
  const want = { prototypes: [m, d], slot_logits: [c, m, k], last_layer: [c, c * k] };
  // In a tidy: decoding that fails halfway (a head.bin too short for its spec) frees what it had made.
  const weights = tf.tidy(() => {
    const t = tf.io.decodeWeights(buf, json.weights);
    for (const [name, shape] of Object.entries(want)) {
      const got = t[name];
      if (!got) throw new ModelFileError(`head.json: missing head weight ${name}`);
      if (got.shape.join() !== shape.join())
        throw new ModelFileError(`head.json: ${name} has shape [${got.shape}], the config says [${shape}]`);
    }
    return [t.prototypes!, t.slot_logits!, t.last_layer!];
  });
  // tf.variable copies its initial value.
  const head = new ProtoPoolHead(
    json.config,
    tf.variable(weights[0] as tf.Tensor2D),
    tf.variable(weights[1] as tf.Tensor3D),
    tf.variable(weights[2] as tf.Tensor2D),
  );
  tf.dispose(weights);
  return head;
}

export interface SerialisedModel {
  files: Record<string, Uint8Array | string>;
  /** sha256 over the weight bytes: the model version. */
  version: string;
  checksums: { path: string; bytes: number; sha256: string }[];
}

export async function serialiseModel(model: ProtoPoolModel): Promise<SerialisedModel> {
  const layers = serialiseLayers(model.features);
  const head = serialiseHead(model.head);
  const files: Record<string, Uint8Array | string> = {
    'model.json': layers.json,
    'weights.bin': layers.weights,
    'head.json': head.json,
    'head.bin': head.data,
  };
  const checksums = Object.entries(files).map(([path, content]) => ({
    path,
    bytes: typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength,
    sha256: sha256(content),
  }));
  const version = createHash('sha256').update(layers.weights).update(head.data).digest('hex');
  return { files, version, checksums };
}

/** Verifies every file listed in the manifest against its checksum; refuses with the file named. */
export async function verifyFiles(dir: string, manifest: ModelManifest): Promise<void> {
  for (const f of manifest.files) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(join(dir, f.path));
    } catch {
      throw new ModelFileError(`${join(dir, f.path)}: missing (listed in manifest.json)`);
    }
    if (bytes.length !== f.bytes || sha256(bytes) !== f.sha256) {
      throw new ModelFileError(
        `${join(dir, f.path)}: corrupt or truncated (checksum mismatch: ${bytes.length} bytes, manifest says ${f.bytes})`,
      );
    }
  }
}

export async function readManifest(dir: string): Promise<ModelManifest> {
  const path = join(dir, 'manifest.json');
  let raw: unknown;
  try {
    raw = await readJson(path);
  } catch (err) {
    throw new ModelFileError(
      `${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    );
  }
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) {
    throw new ModelFileError(`${path}: ${zodIssueLines(parsed.error, 'field').join('; ')}`);
  }
  return parsed.data;
}

/** The model configuration a manifest and head describe (everything needed to rebuild the network). */
export function configFromManifest(manifest: ModelManifest, head: HeadConfig): ModelConfig {
  const { input, architecture: a } = manifest;
  return {
    ...head,
    classes: manifest.classes.length,
    prototypes: a.prototypes,
    slotsPerClass: a.slotsPerClass,
    depth: a.depth,
    focal: a.focal,
    backbone: a.backbone,
    inputShape: [input.height, input.width, input.channels],
    seed: 0,
  };
}

/** Loads a model directory after checking every file against the manifest's checksums. */
export async function loadModelDir(dir: string): Promise<{ model: ProtoPoolModel; manifest: ModelManifest }> {
  const manifest = await readManifest(dir);
  await verifyFiles(dir, manifest);
  const headJson = (await readJson(join(dir, 'head.json'))) as {
    config: HeadConfig;
    weights: tf.io.WeightsManifestEntry[];
  };
  const features = await loadLayersFromDir(dir);
  try {
    const head = decodeHead(headJson, await readFile(join(dir, 'head.bin')));
    return {
      model: new ProtoPoolModel(configFromManifest(manifest, headJson.config), features, head),
      manifest,
    };
  } catch (err) {
    // A server reloading on SIGHUP must not leak a half-built model each time a directory fails.
    features.dispose();
    throw err;
  }
}

/**
 * Each projected prototype's training patch (prototypes/<id>.png) by prototype id, as the manifest's
 * checksummed file list names them: what `serve`, `explain`, `gallery` and `report` show.
 */
export async function readPrototypeImages(
  dir: string,
  manifest: Pick<ModelManifest, 'files'>,
): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>();
  for (const f of manifest.files) {
    const m = /^prototypes\/(\d+)\.png$/.exec(f.path);
    if (m) out.set(Number(m[1]), new Uint8Array(await readFile(join(dir, f.path))));
  }
  return out;
}
