// ProtoPool training and inference, this project (oneDNN kernels, wasm kernels) against PyTorch, in one run.
//
// Each figure comes from its own process (bench/protopool-run.ts, scripts/torch/bench-protopool.py), so
// each peak memory belongs to one engine alone. Ratios are to PyTorch with the same thread count, measured
// in the same run; without Debian's python3-torch the PyTorch rows are left out and the ratios are to
// wasm's kernels on one thread. BENCH_STEPS (default 5) measured training steps per phase, after one
// unmeasured, and 4× as many inference batches (cheap, and slower for their first few: a median of 5 can land
// on those): step times on this 2-core machine wander by ±15% from run to run, so fewer make noisy ratios.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNativeKernels } from '@protopool/native-kernels';
import { BATCH, CASES, type CaseName, type RunResult } from './protopool-run';

const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const steps = (mode: Mode) => (mode === 'inference' ? 4 * STEPS : STEPS);
const TORCH_PYTHON = '/usr/bin/python3';
const here = fileURLToPath(new URL('.', import.meta.url));

export type Mode = 'train' | 'inference';

export interface Row {
  case: CaseName;
  who: string;
  threads: number;
  figures: RunResult;
}

function ours(engine: 'native' | 'wasm', name: CaseName, mode: Mode, threads: number): RunResult {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, `${here}protopool-run.ts`, engine, name, mode, String(steps(mode))],
    {
      encoding: 'utf8',
      env: { ...process.env, PROTOPOOL_THREADS: String(threads) },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`protopool-run printed no result for ${engine} ${name} ${mode}`);
  return JSON.parse(line.slice('RESULT '.length)) as RunResult;
}

function torchAvailable(): boolean {
  if (!existsSync(TORCH_PYTHON)) return false;
  return spawnSync(TORCH_PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;
}

function pytorch(name: CaseName, mode: Mode, threads: number): RunResult {
  const args = [
    `${here}../scripts/torch/bench-protopool.py`,
    ...['--case', name, '--mode', mode, '--threads', String(threads), '--batch', String(BATCH)],
    ...['--steps', String(steps(mode))],
  ];
  // Its per-step progress goes to stderr: kept out of the table, shown if it fails.
  const run = spawnSync(TORCH_PYTHON, args, {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (run.status !== 0) throw new Error(`bench-protopool.py failed (${run.status}):\n${run.stderr}`);
  const out = run.stdout;
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`bench-protopool.py printed no result for ${name} ${mode}`);
  const r = JSON.parse(line.slice('RESULT '.length)) as Record<string, number | string>;
  return {
    engine: `PyTorch ${r.torch}`,
    warmup: r.warmup_img_s as number | undefined,
    joint: r.joint_img_s as number | undefined,
    inference: r.inference_img_s as number | undefined,
    peakMb: r.peak_rss_mb as number,
  };
}

/** Every engine on every case, PyTorch interleaved so that slow drifts of the machine hit all alike. */
export function measureAll(mode: Mode): Row[] {
  const native = loadNativeKernels();
  if (!native.ok) console.warn(`native kernels not measured: ${native.reason}`);
  const torch = torchAvailable();
  if (!torch)
    console.warn(`PyTorch not measured: ${TORCH_PYTHON} has no torch/torchvision (Debian python3-torch)`);
  const rows: Row[] = [];
  for (const name of Object.keys(CASES) as CaseName[]) {
    for (const threads of [1, 2]) {
      if (torch) rows.push({ case: name, who: 'PyTorch', threads, figures: pytorch(name, mode, threads) });
      if (native.ok)
        rows.push({ case: name, who: 'native', threads, figures: ours('native', name, mode, threads) });
      // wasm's own kernels, on one thread: the engine without the addon (its threaded build is opt-in).
      if (threads === 1)
        rows.push({ case: name, who: 'wasm', threads, figures: ours('wasm', name, mode, 1) });
    }
  }
  return rows;
}

const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));

/** A markdown table: images/s per phase and peak memory, with ratios to the reference row. */
export function table(mode: Mode, rows: Row[]): string {
  const phases = mode === 'train' ? (['warmup', 'joint'] as const) : (['inference'] as const);
  const head = `| case | engine | threads | ${phases.map((p) => `${p} img/s | ×`).join(' | ')} | peak MB | × |`;
  const lines = [head, head.replace(/[^|]+/g, '---')];
  for (const r of rows) {
    const ref =
      rows.find((x) => x.case === r.case && x.who === 'PyTorch' && x.threads === r.threads) ??
      rows.find((x) => x.case === r.case && x.who === 'wasm');
    const ratio = (v: number | undefined, base: number | undefined) =>
      v === undefined || base === undefined || ref === r ? '' : `${(v / base).toFixed(2)}`;
    const cells = phases.map((p) => `${fmt(r.figures[p])} | ${ratio(r.figures[p], ref?.figures[p])}`);
    lines.push(
      `| ${r.case} | ${r.figures.engine} | ${r.threads} | ${cells.join(' | ')} | ${r.figures.peakMb} | ${ratio(r.figures.peakMb, ref?.figures.peakMb)} |`,
    );
  }
  return lines.join('\n');
}

export function benchVsPytorch(mode: Mode): void {
  console.log(
    `\n## ProtoPool ${mode === 'train' ? 'training' : 'inference'}, batch ${BATCH}: images/s and peak memory (× = ratio to PyTorch at the same thread count, same run)`,
  );
  console.log(table(mode, measureAll(mode)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchVsPytorch((process.argv[2] as Mode | undefined) ?? 'train');
}
