// Small array helpers shared by the trainer and the data code.

/** Consecutive batches of at most `size` items; the last may be short. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
