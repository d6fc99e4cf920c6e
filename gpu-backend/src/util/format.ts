// Numbers as people read them on the pictures, pages and reports.

/** A probability or share as a percentage with one decimal: 0.9734 → "97.3%". */
export function percent(share: number): string {
  return `${(100 * share).toFixed(1)}%`;
}
