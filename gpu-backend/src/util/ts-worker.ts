// Worker threads running this repo's TypeScript sources (no build step: tsx is registered inside the thread).
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts the TypeScript module `entry` in a worker thread. Node 20 does not pass `--import tsx` on to
 * workers, so a small bootstrap registers tsx's loader first.
 */
export function startTsWorker(entry: URL): Worker {
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href.replace(
    /\.cjs$/,
    '.mjs',
  );
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(code, { eval: true });
}
