// Novelty against the training images: percentiles by linear interpolation, the score as 1 − percentile
// rank, the flag below the 5th percentile (all checked against values worked out by hand).
import { calibrateNovelty, NOVELTY_FLAG_PERCENTILE, noveltyOf } from '@protopool/shared';
import { describe, expect, it } from 'vitest';

describe('novelty calibration', () => {
  it('keeps percentiles 0…100 of the statistic, interpolated linearly between closest ranks (numpy default)', () => {
    // 0, 1, …, 200 shuffled: percentile p is 2p exactly.
    const values = Array.from({ length: 201 }, (_, i) => (i * 37) % 201);
    const c = calibrateNovelty(values);
    for (const [p, v] of c.percentiles.entries()) expect(v).toBeCloseTo(2 * p, 9);
    expect(c).toMatchObject({ statistic: 'best-prototype-similarity', images: 201, flagBelowPercentile: 5 });
    // Four values: percentile 50 sits halfway between the 2nd and 3rd (rank 1.5), percentile 10 at rank 0.3.
    const four = calibrateNovelty([4, 1, 3, 2]).percentiles;
    expect(four[50]).toBeCloseTo(2.5, 12);
    expect(four[10]).toBeCloseTo(1.3, 12);
    expect([four[0], four[100]]).toEqual([1, 4]);
  });

  it('refuses to calibrate on no images', () => {
    expect(() => calibrateNovelty([])).toThrow('at least one image');
  });
});

describe('novelty of an answer', () => {
  const c = calibrateNovelty(Array.from({ length: 201 }, (_, i) => i)); // percentile p = 2p

  it('scores 1 − percentile rank: 0 above every training image, 1 below all, p/100 in between', () => {
    expect(noveltyOf(250, c).score).toBe(0);
    expect(noveltyOf(-3, c).score).toBe(1);
    expect(noveltyOf(100, c).score).toBeCloseTo(0.5, 12); // percentile 50
    expect(noveltyOf(41, c).score).toBeCloseTo(1 - 20.5 / 100, 12); // halfway between p20 (40) and p21 (42)
  });

  it(`flags an input below the ${NOVELTY_FLAG_PERCENTILE}th percentile (10 here) and no other`, () => {
    expect(noveltyOf(9.99, c)).toMatchObject({ bestSimilarity: 9.99, flagged: true });
    expect(noveltyOf(10, c).flagged).toBe(false);
    expect(noveltyOf(150, c).flagged).toBe(false);
  });

  it('flags about 5% of the calibration images themselves', () => {
    const values = Array.from(
      { length: 2000 },
      (_, i) => Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453),
    );
    const cal = calibrateNovelty(values);
    const flagged = values.filter((v) => noveltyOf(v, cal).flagged).length;
    expect(flagged).toBe(100); // exactly the 5% below percentile 5 (distinct values)
  });
});
