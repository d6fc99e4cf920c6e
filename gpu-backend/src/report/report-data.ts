// What a training report shows, read from a model directory and the run's train.jsonl beside it.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { GlobalExplanation, ModelManifest } from '@protopool/shared';
import { z } from 'zod';
import { globalExplanation } from '../explain/global';
import { readManifest, readPrototypeImages } from '../io/model-files';

/** One `epoch` line of train.jsonl, as far as the report reads it (the trainer writes more). */
export const EpochLine = z.object({
  event: z.literal('epoch'),
  epoch: z.number().int(),
  phase: z.string(),
  trainLoss: z.number(),
  trainAccuracy: z.number(),
  testLoss: z.number().optional(),
  testAccuracy: z.number().optional(),
  prototypesUsed: z.number().int().optional(),
});
export type EpochLine = z.infer<typeof EpochLine>;

export interface ReportData {
  manifest: ModelManifest;
  global: GlobalExplanation;
  /** Per epoch, in order; a resumed run's log repeats epochs, and the last word on each wins. */
  epochs: EpochLine[];
  /** Where the epochs came from, or null when the model directory has no train.jsonl beside it. */
  log: string | null;
  /** PNG bytes of each prototype's training patch, by prototype id. */
  patches: Map<number, Uint8Array>;
}

/** The epochs of a train.jsonl: lines that are not epoch records (or not JSON at all) are passed over. */
export function epochsOf(jsonl: string): EpochLine[] {
  const byEpoch = new Map<number, EpochLine>();
  for (const line of jsonl.split('\n')) {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = EpochLine.safeParse(json);
    if (parsed.success) byEpoch.set(parsed.data.epoch, parsed.data);
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

export async function readReportData(modelDir: string): Promise<ReportData> {
  const manifest = await readManifest(modelDir);
  const logPath = join(dirname(modelDir), 'train.jsonl');
  const log = existsSync(logPath) ? logPath : null;
  const epochs = log ? epochsOf(await readFile(log, 'utf8')) : [];
  const patches = await readPrototypeImages(modelDir, manifest);
  return { manifest, global: globalExplanation(manifest), epochs, log, patches };
}
