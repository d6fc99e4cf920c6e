// Projection ("push"): each used prototype becomes its nearest latent patch among the training images
// of the classes that use it — that patch is the "that training patch" of every explanation.
import type { Prototype, PrototypeSource } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import { epochBatches, type Split } from '../data/dataset';
import { readAhead } from '../data/streaming';
import { activationBox } from '../explain/boxes';
import { hardAssignment } from '../model/assignment';
import type { ProtoPoolModel } from '../model/protopool';
import { mapOf, squaredDistances } from '../model/similarity';
import { chunk } from '../util/arrays';

export interface ProjectionResult {
  prototypes: Prototype[];
  /** Prototype ids no slot uses: reported and left out of the manifest. */
  unused: number[];
  /** Mean distance moved by the used prototypes (how far projection changed them). */
  meanShift: number;
  /** Prototype id → index of its source image in the training split (for rendering its patch). */
  sourceIndex: Record<number, number>;
}

/** Which (class, slot) pairs use each prototype under the hard map. */
export function slotUsers(model: ProtoPoolModel): { classIndex: number; slot: number }[][] {
  const users: { classIndex: number; slot: number }[][] = Array.from(
    { length: model.config.prototypes },
    () => [],
  );
  hardAssignment(model.head.slotLogits).forEach((slots, classIndex) => {
    slots.forEach((m, slot) => {
      users[m]!.push({ classIndex, slot });
    });
  });
  return users;
}

/** The input-pixel box a feature cell covers, assuming the grid evenly tiles the input. */
export function cellBox(model: ProtoPoolModel, h: number, w: number) {
  const [gh, gw] = model.grid;
  const [ih, iw] = model.config.inputShape;
  return {
    x0: Math.floor((w * iw) / gw),
    y0: Math.floor((h * ih) / gh),
    x1: Math.ceil(((w + 1) * iw) / gw),
    y1: Math.ceil(((h + 1) * ih) / gh),
  };
}

export async function project(
  model: ProtoPoolModel,
  train: Split,
  batchSize = 128,
): Promise<ProjectionResult> {
  const m = model.config.prototypes;
  const c = model.config.classes;
  const [gh, gw] = model.grid;
  const users = slotUsers(model);
  const used = users.map((u) => u.length > 0);
  // allowed[class][m] = 1 when class uses prototype m.
  const allowed = new Float32Array(c * m);
  users.forEach((u, proto) => {
    for (const { classIndex } of u) allowed[classIndex * m + proto] = 1;
  });
  const allowedT = tf.tensor2d(allowed, [c, m]);
  type Candidate = { dist: number; index: number; id: string; label: number; cell: number; z: Float32Array };
  const best: (Candidate | null)[] = Array.from({ length: m }, () => null);

  const batches = epochBatches(train.size, batchSize);
  let batchNo = 0;
  for await (const batch of readAhead(train, batches, { depth: 1 })) {
    const requested = batches[batchNo++]!;
    if (batch.labels.length === 0) continue; // all skipped as corrupt
    // Skipped images shorten the batch: map loaded images back to split indices by id.
    const byId = new Map(requested.map((i) => [train.id(i), i]));
    const indices = batch.ids.map((id) => byId.get(id)!);
    const [minT, argT, zT] = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, batch.shape);
      const z = model.latents(x);
      const [b, , , d] = z.shape;
      const flatZ = tf.reshape(z, [b * gh * gw, d]);
      const dist = tf.reshape(squaredDistances(z, model.head.prototypes), [b, gh * gw, m]);
      // Patches of images whose class does not use prototype m are out of reach for m.
      const ok = tf.gather(allowedT, tf.tensor1d(batch.labels, 'int32')); // [B,M]
      const masked = tf.add(dist, tf.reshape(tf.mul(tf.sub(1, ok), 1e30), [b, 1, m]));
      const flat = tf.reshape(masked, [b * gh * gw, m]);
      const arg = tf.argMin(flat, 0); // [M]
      return [tf.min(flat, 0), arg, tf.gather(flatZ, arg)];
    });
    const [mins, args, zs] = await Promise.all([minT.data(), argT.data(), zT.data()]);
    tf.dispose([minT, argT, zT]);
    const d = model.config.depth;
    for (let p = 0; p < m; p++) {
      if (!used[p] || mins[p]! >= 1e29 || mins[p]! >= (best[p]?.dist ?? Number.POSITIVE_INFINITY)) continue;
      const row = args[p]!;
      const image = Math.floor(row / (gh * gw));
      best[p] = {
        dist: mins[p]!,
        index: indices[image]!,
        id: batch.ids[image]!,
        label: batch.labels[image]!,
        cell: row % (gh * gw),
        z: Float32Array.from(zs.subarray(p * d, (p + 1) * d)),
      };
    }
  }
  allowedT.dispose();

  const old = await model.head.prototypes.data();
  const next = Float32Array.from(old);
  const prototypes: Prototype[] = [];
  const sourceIndex = new Map<number, number>();
  const unused: number[] = [];
  let shift = 0;
  let moved = 0;
  const d = model.config.depth;
  for (let p = 0; p < m; p++) {
    if (!used[p]) {
      unused.push(p);
      continue;
    }
    const b = best[p];
    let source: PrototypeSource | null = null;
    if (b) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (b.z[j]! - next[p * d + j]!) ** 2;
      shift += Math.sqrt(s);
      moved++;
      next.set(b.z, p * d);
      const h = Math.floor(b.cell / gw);
      const w = b.cell % gw;
      source = { imageId: b.id, label: b.label, cell: { h, w }, box: cellBox(model, h, w) };
      sourceIndex.set(p, b.index);
    }
    prototypes.push({ id: p, source, usedBy: users[p]! });
  }
  tf.tidy(() => model.head.prototypes.assign(tf.tensor2d(next, model.head.prototypes.shape)));
  await sourceBoxes(model, train, prototypes, sourceIndex);
  return {
    prototypes,
    unused,
    meanShift: moved ? shift / moved : 0,
    sourceIndex: Object.fromEntries(sourceIndex),
  };
}

/**
 * Replaces each source's cell box by the box an explanation would draw: the 95th-percentile region of
 * the prototype's upsampled activation map on its own source image (ProtoPNet's rule).
 */
async function sourceBoxes(
  model: ProtoPoolModel,
  train: Split,
  prototypes: Prototype[],
  index: Map<number, number>,
) {
  const withSource = prototypes.filter((p) => p.source && index.has(p.id));
  if (!withSource.length) return;
  const images = [...new Set(withSource.map((p) => index.get(p.id)!))];
  const row = new Map(images.map((img, i) => [img, i]));
  const [gh, gw] = model.grid;
  const [ih, iw] = model.config.inputShape;
  const m = model.config.prototypes;
  for (const group of chunk(images, 64)) {
    const batch = await train.load(group);
    const mapsT = tf.tidy(() => model.similarityMaps(tf.tensor4d(batch.x, batch.shape)));
    const maps = await mapsT.data();
    mapsT.dispose();
    for (const p of withSource) {
      const r = row.get(index.get(p.id)!)! - row.get(group[0]!)!;
      if (r < 0 || r >= group.length) continue;
      const map = mapOf(maps, r, p.id, gh * gw, m);
      p.source!.box = activationBox(map, gh, gw, ih, iw);
    }
  }
}
