// Seeding a fresh prototype: the training patch that best tells one class apart, among patches its prototypes do not already look at.
import * as tf from '@tensorflow/tfjs';
import { latentFocal, squaredDistances } from '../model/similarity';

/** Training latents kept for a revival pass: z [N,H,W,D] with each image's label. */
export interface Latents {
  z: tf.Tensor4D;
  labels: readonly number[];
}

/** A patch to seed a prototype from: image (index into the latents), cell (h·W + w), its gap and its vector. */
export interface PatchPick {
  image: number;
  cell: number;
  gap: number;
  vector: number[];
}

/**
 * Each candidate patch's gap for class c, as `prototypeGaps` measures a prototype's: its mean focal similarity
 * on the class's images minus its mean on the other images. A candidate's own source image is left out, as a
 * patch always matches itself exactly. candidates: [J,D]; sources[j]: the image candidate j was cut from.
 */
export function patchGaps(
  latents: Latents,
  classIndex: number,
  candidates: tf.Tensor2D,
  sources: readonly number[],
  eps: number,
  imagesPerChunk = 16,
): number[] {
  const [n, h, w, d] = latents.z.shape;
  const j = candidates.shape[0];
  const own = new Float64Array(j);
  const ownCount = new Float64Array(j);
  const rest = new Float64Array(j);
  let restCount = 0;
  for (let start = 0; start < n; start += imagesPerChunk) {
    const size = Math.min(imagesPerChunk, n - start);
    const focalT = tf.tidy(() =>
      latentFocal(tf.slice(latents.z, [start, 0, 0, 0], [size, h, w, d]), candidates, eps),
    );
    const focal = focalT.dataSync();
    focalT.dispose();
    for (let b = 0; b < size; b++) {
      const image = start + b;
      if (latents.labels[image] !== classIndex) {
        restCount++;
        for (let k = 0; k < j; k++) rest[k]! += focal[b * j + k]!;
        continue;
      }
      for (let k = 0; k < j; k++) {
        if (sources[k] === image) continue;
        own[k]! += focal[b * j + k]!;
        ownCount[k]!++;
      }
    }
  }
  return Array.from(
    own,
    (s, k) => (ownCount[k] ? s / ownCount[k]! : 0) - (restCount ? rest[k]! / restCount : 0),
  );
}

/**
 * Cells of `image` a held prototype already looks at: each prototype's nearest cell and its 8 neighbours
 * (the receptive fields of neighbouring cells overlap most of the part).
 */
export function coveredCells(latents: Latents, image: number, prototypes: tf.Tensor2D): Set<number> {
  const [, h, w, d] = latents.z.shape;
  const nearestT = tf.tidy(() => {
    const dist = squaredDistances(tf.slice(latents.z, [image, 0, 0, 0], [1, h, w, d]), prototypes);
    return tf.argMin(tf.reshape(dist, [h * w, prototypes.shape[0]]), 0);
  });
  const nearest = Array.from(nearestT.dataSync());
  nearestT.dispose();
  const covered = new Set<number>();
  for (const cell of nearest) {
    const [ch, cw] = [Math.floor(cell / w), cell % w];
    for (let dh = -1; dh <= 1; dh++) {
      for (let dw = -1; dw <= 1; dw++) {
        const [y, x] = [ch + dh, cw + dw];
        if (y >= 0 && y < h && x >= 0 && x < w) covered.add(y * w + x);
      }
    }
  }
  return covered;
}

/**
 * The best patch for class c among every cell of the class's first `images` images (in latent order) that
 * none of `held` (the class's informative prototypes, [P,D]; may be empty) looks at; null if no patch
 * reaches `minGap`. Ties go to the earlier image and cell, so a pass is deterministic.
 */
export function pickPatch(
  latents: Latents,
  classIndex: number,
  held: tf.Tensor2D,
  images: number,
  minGap: number,
  eps: number,
): PatchPick | null {
  const [, h, w, d] = latents.z.shape;
  const sourcesOfClass = latents.labels
    .map((label, i) => (label === classIndex ? i : -1))
    .filter((i) => i >= 0)
    .slice(0, images);
  const cells: { image: number; cell: number }[] = [];
  const rows: number[] = []; // each candidate's row in the class images' latents, flattened
  sourcesOfClass.forEach((image, i) => {
    const covered = held.shape[0] ? coveredCells(latents, image, held) : new Set<number>();
    for (let cell = 0; cell < h * w; cell++) {
      if (covered.has(cell)) continue;
      cells.push({ image, cell });
      rows.push(i * h * w + cell);
    }
  });
  if (!cells.length) return null;
  const candidates = tf.tidy(() => {
    const flat = tf.reshape(tf.gather(latents.z, sourcesOfClass), [sourcesOfClass.length * h * w, d]);
    return tf.gather(flat, rows) as tf.Tensor2D;
  });
  const gaps = patchGaps(
    latents,
    classIndex,
    candidates,
    cells.map((c) => c.image),
    eps,
  );
  let best = -1;
  gaps.forEach((g, k) => {
    if (g >= minGap && (best < 0 || g > gaps[best]!)) best = k;
  });
  const pick =
    best < 0
      ? null
      : {
          ...cells[best]!,
          gap: gaps[best]!,
          vector: Array.from(candidates.dataSync().subarray(best * d, (best + 1) * d)),
        };
  candidates.dispose();
  return pick;
}
