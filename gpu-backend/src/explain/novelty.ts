// The novelty statistic of an image (how well its best-matching prototype matches anywhere in it), and the
// calibration of it on training images that every model directory carries (shared/src/novelty.ts).
import { calibrateNovelty, type NoveltyCalibration } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/dataset';
import { readAhead } from '../data/streaming';
import type { ProtoPoolModel } from '../model/protopool';
import { chunk } from '../util/arrays';
import { permutation } from '../util/random';

/** Training images the calibration reads at most: enough for a stable 5th percentile, a few seconds to read. */
export const CALIBRATION_IMAGES = 2000;
const CALIBRATION_SEED = 0x40e1;

/**
 * max over the prototypes `used` and the feature cells of image `b`'s similarity maps, read back flat as
 * [B, cells, M]. Only used prototypes count: the others belong to no class, so matching one explains nothing.
 */
export function bestSimilarity(
  maps: ArrayLike<number>,
  b: number,
  cells: number,
  m: number,
  used: readonly number[],
) {
  let best = Number.NEGATIVE_INFINITY;
  for (let cell = 0; cell < cells; cell++) {
    const row = (b * cells + cell) * m;
    for (const p of used) best = Math.max(best, maps[row + p]!);
  }
  return best;
}

/** The statistic's percentiles over (a seeded sample of at most CALIBRATION_IMAGES of) `split`. */
export async function calibrateOnSplit(
  model: ProtoPoolModel,
  split: Split,
  used: readonly number[],
  batchSize: number,
): Promise<NoveltyCalibration> {
  const batches = chunk(permutation(split.size, CALIBRATION_SEED).slice(0, CALIBRATION_IMAGES), batchSize);
  const cells = model.grid[0] * model.grid[1];
  const m = model.config.prototypes;
  const values: number[] = [];
  for await (const batch of readAhead(split, batches, { depth: 1 })) {
    if (batch.labels.length === 0) continue; // all skipped as corrupt
    const mapsT = tf.tidy(() => model.similarityMaps(tf.tensor4d(batch.x, batch.shape)));
    const maps = await mapsT.data();
    mapsT.dispose();
    for (let b = 0; b < batch.labels.length; b++) values.push(bestSimilarity(maps, b, cells, m, used));
  }
  return calibrateNovelty(values);
}
