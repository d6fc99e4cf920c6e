import {
  asModelInput,
  type ClassifyOptions,
  type Explanation,
  explanationId,
  type GlobalExplanation,
  type ModelManifest,
  type WireTensor,
} from '@protopool/shared';
import { imageToInput } from '@protopool/shared/image';
import * as tf from '@tensorflow/tfjs';
import { initImageCodecs } from '../data/image-node';
import { globalExplanation } from '../explain/global';
import { explainBatch, type HeadState, headState } from '../explain/local';
import { loadModelDir, readPrototypeImages } from '../io/model-files';
import type { ProtoPoolModel } from '../model/protopool';
import { type BatcherOptions, type BatchTiming, MicroBatcher } from './batcher';

interface Job {
  data: Float32Array;
  id: string;
  options: ClassifyOptions;
}

export class ModelService {
  readonly batcher: MicroBatcher<Job, Explanation>;
  readonly global: GlobalExplanation;

  private constructor(
    readonly model: ProtoPoolModel,
    readonly manifest: ModelManifest,
    readonly dir: string,
    batching: BatcherOptions,
  ) {
    this.batcher = new MicroBatcher((jobs) => this.runBatch(jobs), batching);
    this.global = globalExplanation(manifest);
  }

  /** The served model never changes: its slot assignment and last layer are read once. */
  head: HeadState | undefined;
  /** Prototype id → PNG of its source patch (files the manifest lists and checksummed at load). */
  readonly images = new Map<number, Uint8Array>();

  static async load(dir: string, batching: BatcherOptions): Promise<ModelService> {
    const { model, manifest } = await loadModelDir(dir);
    try {
      // Served models never train: inference runs with batch norm folded into the convolutions.
      await model.freeze();
      const service = new ModelService(model, manifest, dir, batching);
      service.head = await headState(model);
      for (const [id, png] of await readPrototypeImages(dir, manifest)) service.images.set(id, png);
      return service;
    } catch (err) {
      model.dispose(); // as loadModelDir: a failed (re)load leaves no tensor behind
      throw err;
    }
  }

  /** The tensor shape a request must carry: [H,W,C] or [1,H,W,C], float32, normalised. */
  get inputShape(): [number, number, number] {
    const { height, width, channels } = this.manifest.input;
    return [height, width, channels];
  }

  /** The model input from encoded image bytes, by the manifest's preprocessing (shared with the edge). */
  async imageInput(bytes: Uint8Array): Promise<Float32Array> {
    await initImageCodecs();
    return imageToInput(bytes, this.manifest.input);
  }

  /** `timed` hears the request's queue wait, run time and batch size (its log line). */
  async classify(
    t: WireTensor,
    options: ClassifyOptions,
    timed?: (t: BatchTiming) => void,
  ): Promise<Explanation> {
    const input = asModelInput(t, this.manifest.input);
    const id = await explanationId(this.manifest.version, input);
    return this.batcher.submit({ data: input.data as Float32Array, id, options }, timed);
  }

  private async runBatch(jobs: Job[]): Promise<Explanation[]> {
    const [h, w, c] = this.inputShape;
    const size = h * w * c;
    const all = new Float32Array(jobs.length * size);
    jobs.forEach((j, i) => {
      all.set(j.data, i * size);
    });
    const x = tf.tensor4d(all, [jobs.length, h, w, c]);
    try {
      return await explainBatch(
        this.model,
        this.manifest,
        x,
        jobs.map((j) => j.id),
        jobs.map((j) => j.options),
        this.head,
      );
    } finally {
      x.dispose();
    }
  }

  /** Live numbers for /ping: the tensor count must stay flat however many requests pass. */
  stats(): { tensors: number; queue: number; batches: number; requests: number } {
    const b = this.batcher;
    return { tensors: tf.memory().numTensors, queue: b.depth, batches: b.batches, requests: b.items };
  }

  dispose(): void {
    this.model.dispose();
  }
}
