// Median-of-N timing; ratios are always against a baseline measured in the same run.
export interface BenchResult {
  name: string;
  medianMs: number;
  runs: number;
  /** Speed-up over the baseline of the same group (>1 is faster). */
  ratio?: number;
  extra?: Record<string, number | string>;
}

export function measure(name: string, fn: () => unknown, runs = 7): BenchResult {
  fn(); // warm-up: JIT and allocations
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { name, medianMs: times[Math.floor(runs / 2)]!, runs };
}

export function printTable(title: string, rows: BenchResult[]): void {
  console.log(`\n## ${title}`);
  for (const r of rows) {
    const ratio = r.ratio === undefined ? 'baseline' : `${r.ratio.toFixed(2)}x`;
    const extra = r.extra
      ? `  ${Object.entries(r.extra)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`
      : '';
    console.log(
      `${r.name.padEnd(48)} ${r.medianMs.toFixed(2).padStart(10)} ms  ${ratio.padStart(9)}${extra}`,
    );
  }
}
