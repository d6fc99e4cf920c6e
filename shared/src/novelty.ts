// "Looks like nothing I know": the calibration a model carries of how close training images come to its
// prototypes, and the score and flag every answer carries against it.
import { z } from 'zod';

/**
 * Inputs are flagged below this percentile of the training images' statistic: the threshold that keeps
 * 95% of in-distribution inputs (the convention OOD detection is evaluated at, "FPR at 95% TPR"), so about
 * one genuine input in twenty is flagged, and the score says how far below or above it an input is.
 */
export const NOVELTY_FLAG_PERCENTILE = 5;

export const NoveltyCalibration = z.object({
  /** max over the used prototypes p and feature cells c of log((d + 1)/(d + ε)), d = ‖z_c − p‖². */
  statistic: z.literal('best-prototype-similarity'),
  /** The statistic's percentiles 0, 1, …, 100 over the calibration images (linear interpolation). */
  percentiles: z.array(z.number()).length(101),
  flagBelowPercentile: z.number().min(0).max(100),
  /** How many training images the percentiles come from. */
  images: z.number().int().min(1),
});
export type NoveltyCalibration = z.infer<typeof NoveltyCalibration>;

export const Novelty = z.object({
  /** The input's statistic (see NoveltyCalibration). */
  bestSimilarity: z.number(),
  /** The share of calibration images that matched a prototype better: 0 typical … 1 unlike all of them. */
  score: z.number().min(0).max(1),
  /** Below the calibration's flag percentile: the model has seen nothing like this input. */
  flagged: z.boolean(),
});
export type Novelty = z.infer<typeof Novelty>;

/** Percentile p of sorted values by linear interpolation between closest ranks (numpy's default). */
function percentile(sorted: readonly number[], p: number): number {
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (at - lo) * (sorted[hi]! - sorted[lo]!);
}

export function calibrateNovelty(values: readonly number[], flagBelowPercentile = NOVELTY_FLAG_PERCENTILE) {
  if (values.length === 0) throw new Error('novelty calibration needs at least one image');
  const sorted = [...values].sort((a, b) => a - b);
  return NoveltyCalibration.parse({
    statistic: 'best-prototype-similarity',
    percentiles: Array.from({ length: 101 }, (_, p) => percentile(sorted, p)),
    flagBelowPercentile,
    images: values.length,
  });
}

/**
 * The score is 1 − the statistic's percentile rank, read off the table by the same linear interpolation
 * (so it is exactly p/100 at the p-th percentile): 1 below every calibration image, 0 above all of them.
 */
export function noveltyOf(bestSimilarity: number, c: NoveltyCalibration): Novelty {
  const q = c.percentiles;
  let rank: number;
  if (!(bestSimilarity > q[0]!)) rank = 0;
  else if (bestSimilarity >= q[100]!) rank = 100;
  else {
    let p = 0;
    while (q[p + 1]! <= bestSimilarity) p++;
    // Ties across several percentiles (a flat stretch) land on the last one reached.
    rank = p + (bestSimilarity - q[p]!) / (q[p + 1]! - q[p]!);
  }
  return {
    bestSimilarity,
    score: 1 - rank / 100,
    flagged: bestSimilarity < percentile(q, c.flagBelowPercentile),
  };
}
