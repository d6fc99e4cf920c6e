// CLI failures: usage errors (bad flags, paths, config) exit 2 before anything is written; others exit 1.
import { join } from 'node:path';
import { exists } from '../io/files';
export class UsageError extends Error {
  override name = 'UsageError';
}

export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

/** Resolves --model: a model directory itself, or a training --out directory holding model/. */
export async function modelDir(path: string): Promise<string> {
  if (await exists(join(path, 'manifest.json'))) return path;
  if (await exists(join(path, 'model', 'manifest.json'))) return join(path, 'model');
  throw new UsageError(`--model ${path}: no manifest.json there or in ${join(path, 'model')}`);
}
