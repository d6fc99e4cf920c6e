// Bounded read-ahead over a split: up to `depth` batches load while the caller trains, never the whole epoch.
import type { Batch, Split } from './dataset';

export interface ReadAheadOptions {
  /** Batches loading ahead of the one being consumed (memory ≈ depth + 1 batches). */
  depth?: number;
  /** Applied on the loader side (e.g. augmentation), so it overlaps the step too. */
  transform?: (batch: Batch, position: number) => Batch | Promise<Batch>;
}

/**
 * Yields the batches in order; loads start as soon as a slot frees, so I/O and decoding run while the caller
 * awaits its step. A load error surfaces when its batch is reached, after the earlier batches were yielded.
 */
export async function* readAhead(
  split: Split,
  batches: readonly (readonly number[])[],
  options: ReadAheadOptions = {},
): AsyncGenerator<Batch> {
  const depth = Math.max(1, options.depth ?? 2);
  const pending: Promise<Batch>[] = [];
  let next = 0;
  const start = () => {
    const position = next++;
    const p = split
      .load(batches[position]!)
      .then((b) => (options.transform ? options.transform(b, position) : b));
    // Errors are re-raised when awaited below; this only stops an unhandled-rejection warning meanwhile.
    p.catch(() => {});
    pending.push(p);
  };
  while (next < batches.length && pending.length < depth) start();
  while (pending.length) {
    const current = await pending.shift()!;
    if (next < batches.length) start();
    yield current;
  }
}
