// A Split over image files on disk: lazy decode + fit + normalise per batch, a bounded cache, skip-and-count.
import type { InputSpec } from '@protopool/shared';
import type { Batch, PartLocation, SkipLog, Split } from './dataset';
import { decodePool } from './decode-pool';
import { DataError } from './errors';
import {
  ChannelStats,
  type Fitted,
  fitImage,
  normalise,
  type Placement,
  placePoint,
  placeRect,
  type Rect,
  type ResizeMode,
} from './image';
import { readImage } from './image-node';

/** Per-channel (x − mean) / std after scaling pixels to [0, 1], as the manifest's input records it. */
export type Normalisation = Pick<InputSpec, 'mean' | 'std'>;

/** One image as a loader lists it; boxes and parts in the file's own pixel coordinates. */
export interface ImageEntry {
  file: string;
  label: number;
  id: string;
  box?: Rect;
  parts?: PartLocation[];
}

export interface ImageSplitOptions {
  width: number;
  height: number;
  channels: 1 | 3;
  resize: ResizeMode;
  /** Fit the annotated box instead of the whole image (CUB/Cars published runs). */
  cropToBox: boolean;
  /** Leave unreadable images out of their batch and count them, instead of failing the load. */
  skipCorrupt: boolean;
  /** Budget for fitted images kept in memory (bytes); 0 reads every batch from disk. */
  cacheBytes: number;
  /** Image files read at once within one batch. */
  concurrency: number;
  /** Threads that decode off the training thread (decode-pool.ts); 0 or absent decodes inline. */
  decodeWorkers?: number;
}

export const DEFAULT_CACHE_MB = 512;

interface Prepared extends Fitted {
  index: number;
}

/** Fits one image as the options say; the placement maps the file's coordinates to the input's. */
async function prepare(entry: ImageEntry, o: ImageSplitOptions): Promise<Fitted> {
  const box = o.cropToBox ? entry.box : undefined;
  if (o.decodeWorkers) {
    return decodePool(o.decodeWorkers).fit({
      file: entry.file,
      channels: o.channels,
      width: o.width,
      height: o.height,
      resize: o.resize,
      box,
    });
  }
  const pixels = await readImage(entry.file, o.channels);
  return fitImage(pixels, o, o.resize, box);
}

function placeParts(parts: PartLocation[], p: Placement): PartLocation[] {
  const c = p.content;
  return parts.map((part) => {
    const { x, y } = placePoint(p, part.x, part.y);
    // A part cut away by the crop (or outside the letterbox content) cannot be seen in the input.
    const inside = x >= c.x0 && x < c.x1 && y >= c.y0 && y < c.y1;
    return { part: part.part, x, y, visible: part.visible && inside };
  });
}

export class ImageSplit implements Split {
  readonly labels: Int32Array;
  readonly partNames?: readonly string[];
  readonly skipped?: SkipLog;
  private readonly skips: { file: string; reason: string }[] = [];
  private readonly cache = new Map<number, Fitted>();
  private cached = 0;

  constructor(
    readonly entries: readonly ImageEntry[],
    readonly options: ImageSplitOptions,
    private readonly norm: () => { mean: number[]; std: number[] },
    partNames?: readonly string[],
  ) {
    this.labels = Int32Array.from(entries, (e) => e.label);
    if (partNames) this.partNames = partNames;
    if (options.skipCorrupt) {
      const skips = this.skips;
      this.skipped = {
        get count() {
          return skips.length;
        },
        files: skips,
      };
    }
  }

  get size(): number {
    return this.entries.length;
  }

  id(index: number): string {
    return this.entries[index]!.id;
  }

  /** The fitted image at `index` (0..255 floats), from the cache or disk; undefined if skipped as corrupt. */
  async fitted(index: number): Promise<Fitted | undefined> {
    const hit = this.cache.get(index);
    if (hit) {
      // Re-insert: Map order is the LRU order.
      this.cache.delete(index);
      this.cache.set(index, hit);
      return hit;
    }
    const entry = this.entries[index];
    if (!entry) throw new RangeError(`index ${index} outside 0..${this.size - 1}`);
    let f: Fitted;
    try {
      f = await prepare(entry, this.options);
    } catch (err) {
      if (this.options.skipCorrupt && err instanceof DataError) {
        if (!this.skips.some((s) => s.file === entry.file))
          this.skips.push({ file: entry.file, reason: err.message });
        return undefined;
      }
      throw err;
    }
    const bytes = f.data.byteLength;
    if (bytes <= this.options.cacheBytes) {
      while (this.cached + bytes > this.options.cacheBytes) {
        const [oldest, value] = this.cache.entries().next().value!;
        this.cache.delete(oldest);
        this.cached -= value.data.byteLength;
      }
      this.cache.set(index, f);
      this.cached += bytes;
    }
    return f;
  }

  async load(indices: readonly number[]): Promise<Batch> {
    const prepared = await mapLimited(indices, this.options.concurrency, async (index) => {
      const f = await this.fitted(index);
      return f ? ({ ...f, index } as Prepared) : undefined;
    });
    const kept = prepared.filter((p): p is Prepared => p !== undefined);
    const { width, height, channels } = this.options;
    const per = width * height * channels;
    const x = new Float32Array(kept.length * per);
    const { mean, std } = this.norm();
    kept.forEach((p, b) => {
      normalise(p.data, mean, std, x, b * per);
    });
    const batch: Batch = {
      x,
      shape: [kept.length, height, width, channels],
      labels: Int32Array.from(kept, (p) => this.entries[p.index]!.label),
      ids: kept.map((p) => this.entries[p.index]!.id),
    };
    if (this.partNames)
      batch.parts = kept.map((p) => placeParts(this.entries[p.index]!.parts ?? [], p.placement));
    if (this.entries.some((e) => e.box)) {
      batch.boxes = kept.map((p) => {
        const box = this.entries[p.index]!.box;
        return box ? placeRect(p.placement, box) : null;
      });
    }
    return batch;
  }

  /** Per-channel mean/std of up to `sample` training images spread evenly over the split. */
  async stats(sample: number): Promise<{ mean: number[]; std: number[] }> {
    const stats = new ChannelStats(this.options.channels);
    const n = Math.min(sample, this.size);
    const picks = Array.from({ length: n }, (_, i) => Math.floor((i * this.size) / n));
    const fitted = await mapLimited(picks, this.options.concurrency, (i) => this.fitted(i));
    for (const f of fitted) if (f) stats.add(f.data);
    return stats.result();
  }
}

/** `fn` over `items` with at most `limit` in flight, results in input order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}

/** The manifest's input description for an image dataset: size, channels, resize mode and statistics. */
export function inputSpecOf(
  o: { height: number; width: number; channels: 1 | 3; resize: 'crop' | 'letterbox' | 'stretch' },
  norm: { mean: number[]; std: number[] },
): InputSpec {
  return {
    height: o.height,
    width: o.width,
    channels: o.channels,
    resize: o.resize,
    mean: norm.mean,
    std: norm.std,
  };
}
