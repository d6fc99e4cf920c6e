// The Dataset interface every loader implements, and batching over it.
import type { InputSpec } from '@protopool/shared';
import { chunk } from '../util/arrays';
import { permutation } from '../util/random';
import type { Rect } from './image';

export interface Batch {
  /** Normalised images, NHWC, row-major. */
  x: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  /** Stable image ids (e.g. "train/17"), recorded as prototype sources. */
  ids: string[];
  /** Ground-truth part locations per image, in this batch's pixel coordinates (datasets with parts only). */
  parts?: PartLocation[][];
  /** Object bounding box per image in this batch's pixel coordinates (null: none annotated). */
  boxes?: (Rect | null)[];
}

/** One annotated part of one image: `part` indexes `Split.partNames`; x, y in input pixels (continuous). */
export interface PartLocation {
  part: number;
  x: number;
  y: number;
  visible: boolean;
}

/** Files a loader skipped instead of failing (`skipCorrupt`): why, per file. */
export interface SkipLog {
  readonly count: number;
  readonly files: ReadonlyArray<{ file: string; reason: string }>;
}

export interface Split {
  readonly size: number;
  /** All labels, in index order (for per-class lookups such as projection). */
  readonly labels: Int32Array;
  id(index: number): string;
  /** The un-augmented, normalised images at these indices. */
  load(indices: readonly number[]): Promise<Batch>;
  /** Names of the annotated parts (CUB: "back", "beak", …); present when batches carry `parts`. */
  readonly partNames?: readonly string[];
  /**
   * Unreadable images skipped so far (only when opened with skipCorrupt). A skipped image is left out of
   * its batch, so a batch may be shorter than its indices, or empty.
   */
  readonly skipped?: SkipLog;
}

export interface Dataset {
  /** The data spec it was opened from, e.g. "fashion-mnist" or "fashion-mnist:/data/fm". */
  spec: string;
  /** What was actually read, for people and the manifest, e.g. "Fashion-MNIST (embedded 10k/2k subset)". */
  description: string;
  classes: string[];
  input: InputSpec;
  train: Split;
  test: Split;
  /**
   * Training settings this data needs, as a partial config (e.g. the generated parts data's schedule);
   * a config file and flags override them. The manifest records the merged config.
   */
  trainDefaults?: Record<string, unknown>;
}

/** Index batches for one epoch: shuffled by (seed, epoch) when `shuffleSeed` is given; the last may be short. */
export function epochBatches(size: number, batchSize: number, shuffleSeed?: number): number[][] {
  const order =
    shuffleSeed === undefined ? Array.from({ length: size }, (_, i) => i) : permutation(size, shuffleSeed);
  return chunk(order, batchSize);
}

/** The first `n` examples of a split (deterministic, so quick runs and tests reproduce). */
export function limitSplit(split: Split, n: number | undefined): Split {
  if (n === undefined || n >= split.size) return split;
  return {
    size: n,
    labels: split.labels.subarray(0, n),
    id: (i) => split.id(i),
    load: (indices) => split.load(indices),
    ...(split.partNames ? { partNames: split.partNames } : {}),
    ...(split.skipped ? { skipped: split.skipped } : {}),
  };
}
