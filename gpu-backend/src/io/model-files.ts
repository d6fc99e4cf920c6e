// A trained model on disk: features (tf.io layers format), head weights, manifest with checksums.
//
//   model.json + weights.bin   the features network (backbone + add-on), TF.js layers format
//   head.json + head.bin       prototypes, slot logits, last layer (tf.io weight specs + data)
//   manifest.json              the shared ModelManifest: version = sha256 of the weights, file checksums
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelManifest } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import type { HeadConfig } from '../model/head';
import { ProtoPoolHead } from '../model/head';
import { type ModelConfig, ProtoPoolModel } from '../model/protopool';
import { readJson, sha256 } from './files';

export class ModelFileError extends Error {
  override name = 'ModelFileError';
}

function joinBuffers(data: ArrayBuffer | ArrayBuffer[]): Uint8Array {
  const parts = Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), o);
    o += p.byteLength;
  }
  return out;
}

/** Serialises a layers model to { model.json, weights.bin } contents. */
export async function serialiseLayers(model: tf.LayersModel): Promise<{ json: string; weights: Uint8Array }> {
  let out: { json: string; weights: Uint8Array } | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = joinBuffers(artifacts.weightData as ArrayBuffer | ArrayBuffer[]);
      const json = JSON.stringify({
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      });
      out = { json, weights };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out!;
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
  const data = joinBuffers(
    buffers.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer),
  );
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: data.buffer as ArrayBuffer,
    }),
  );
}

export async function serialiseHead(head: ProtoPoolHead): Promise<{ json: string; data: Uint8Array }> {
  const { data, specs } = await tf.io.encodeWeights({
    prototypes: head.prototypes,
    slot_logits: head.slotLogits,
    last_layer: head.lastLayer,
  });
  return { json: JSON.stringify({ config: head.config, weights: specs }), data: new Uint8Array(data) };
}

export function decodeHead(
  json: { config: HeadConfig; weights: tf.io.WeightsManifestEntry[] },
  data: Uint8Array,
): ProtoPoolHead {
  const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const t = tf.io.decodeWeights(buf, json.weights);
  const { prototypes, slot_logits, last_layer } = t as Record<string, tf.Tensor>;
  if (!prototypes || !slot_logits || !last_layer) throw new ModelFileError('head.json: missing head weights');
  const head = new ProtoPoolHead(
    json.config,
    tf.variable(prototypes as tf.Tensor2D),
    tf.variable(slot_logits as tf.Tensor3D),
    tf.variable(last_layer as tf.Tensor2D),
  );
  tf.dispose(Object.values(t));
  return head;
}

export interface SerialisedModel {
  files: Record<string, Uint8Array | string>;
  /** sha256 over the weight bytes: the model version. */
  version: string;
  checksums: { path: string; bytes: number; sha256: string }[];
}

export async function serialiseModel(model: ProtoPoolModel): Promise<SerialisedModel> {
  const layers = await serialiseLayers(model.features);
  const head = await serialiseHead(model.head);
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
  const both = new Uint8Array(layers.weights.length + head.data.length);
  both.set(layers.weights, 0);
  both.set(head.data, layers.weights.length);
  return { files, version: sha256(both), checksums };
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
    const issue = parsed.error.issues[0]!;
    throw new ModelFileError(`${path}: field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
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
  const head = decodeHead(headJson, await readFile(join(dir, 'head.bin')));
  return {
    model: new ProtoPoolModel(configFromManifest(manifest, headJson.config), features, head),
    manifest,
  };
}
