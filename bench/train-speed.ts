// Training speed (images/s) of ResNet-18 and the small CNN on wasm: baseline vs improved kernels vs two cores.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../gpu-backend/src/engine';
import { enableWasmThreads } from '../gpu-backend/src/kernels/threaded-wasm';
import { type KernelSet, useKernelSet } from './baseline-kernels';
import { type BenchResult, printTable } from './measure';
import { DataParallelTrainer } from './parallel/data-parallel';
import { type BackboneReplicaOptions, backboneReplica } from './parallel/examples';

const BATCH = 32;
const RUNS = Number(process.env.TRAIN_SPEED_RUNS ?? 5);
const CASES: BackboneReplicaOptions[] = [
  { name: 'resnet18', inputShape: [64, 64, 3], seed: 1 },
  { name: 'small-cnn', inputShape: [28, 28, 1], seed: 1 },
];
const label = (c: BackboneReplicaOptions) => `${c.name} ${c.inputShape.join('×')} b${BATCH}`;

function batchData(c: BackboneReplicaOptions): Float32Array {
  const x = tf.randomNormal([BATCH, ...c.inputShape], 0, 1, 'float32', 7);
  const data = x.dataSync() as Float32Array;
  x.dispose();
  return data;
}

function withRate(r: BenchResult, tensors?: [number, number]): BenchResult {
  const extra: Record<string, number | string> = { 'img/s': (BATCH / (r.medianMs / 1000)).toFixed(1) };
  if (tensors) extra.tensors = `${tensors[0]}→${tensors[1]}`;
  return { ...r, extra };
}

/** Median and fastest of `times` as a result row (the fastest is the least disturbed by other load). */
function summary(name: string, times: number[], tensors?: [number, number]): BenchResult {
  const sorted = [...times].sort((a, b) => a - b);
  const r = withRate(
    { name, medianMs: sorted[Math.floor(sorted.length / 2)]!, runs: sorted.length },
    tensors,
  );
  r.extra!['best img/s'] = (BATCH / (sorted[0]! / 1000)).toFixed(1);
  return r;
}

/**
 * One process, one thread: full steps (forward in training mode, gradients, Adam) of each kernel set,
 * alternating step by step so that load from other processes hits every set alike.
 */
function singleThread(c: BackboneReplicaOptions, sets: [KernelSet, string][]): BenchResult[] {
  const replica = backboneReplica(c);
  const x = tf.tensor(batchData(c), [BATCH, ...c.inputShape]);
  const step = () => {
    const loss = replica.optimizer!.minimize(() => replica.loss({ x }), true, replica.variables)!;
    loss.dataSync();
    loss.dispose();
  };
  // Warm-up: creates the optimizer's slots and JIT-compiles every path, so the count below is steady.
  for (const [set] of sets) {
    useKernelSet(set);
    step();
  }
  const before = tf.memory().numTensors;
  const times = sets.map(() => [] as number[]);
  for (let run = 0; run < RUNS; run++) {
    sets.forEach(([set], i) => {
      useKernelSet(set);
      const t0 = performance.now();
      step();
      times[i]!.push(performance.now() - t0);
    });
  }
  const after = tf.memory().numTensors;
  useKernelSet('fast');
  replica.optimizer!.dispose();
  x.dispose();
  replica.dispose!();
  return sets.map(([, name], i) => summary(name, times[i]!, [before, after]));
}

async function measureAsync(name: string, fn: () => Promise<unknown>, runs: number): Promise<BenchResult> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { name, medianMs: times[Math.floor(runs / 2)]!, runs };
}

async function dataParallel(c: BackboneReplicaOptions, replicas: number): Promise<BenchResult> {
  const trainer = await DataParallelTrainer.create({
    module: new URL('./parallel/examples.ts', import.meta.url).href,
    exportName: 'backboneReplica',
    options: c,
    replicas,
  });
  const data = batchData(c);
  try {
    const r = await measureAsync(
      `${label(c)}: data-parallel, ${replicas} workers`,
      () => trainer.step({ x: { data: data.slice(), shape: [BATCH, ...c.inputShape] } }),
      RUNS,
    );
    return withRate(r);
  } finally {
    await trainer.dispose();
  }
}

/** The threaded-SIMD build must start before any other wasm backend: measured in a child process. */
function threadedInChild(): BenchResult[] {
  const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
    env: { ...process.env, TRAIN_SPEED_CHILD: 'threaded' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULTS '));
  if (!line) throw new Error('threaded child printed no results');
  return JSON.parse(line.slice('RESULTS '.length)) as BenchResult[];
}

/** Baseline (first-version kernels), improved kernels, threaded wasm, two data-parallel workers. */
export async function benchTrainSpeed(): Promise<BenchResult[]> {
  await initEngine('wasm');
  const rows: BenchResult[] = [];
  let threaded: BenchResult[] = [];
  try {
    threaded = threadedInChild();
  } catch (err) {
    console.warn(`threaded wasm not measured: ${(err as Error).message.split('\n')[0]}`);
  }
  for (const c of CASES) {
    const [base, fast] = singleThread(c, [
      ['baseline', `${label(c)}: baseline kernels, 1 thread`],
      ['fast', `${label(c)}: improved kernels, 1 thread`],
    ]) as [BenchResult, BenchResult];
    const group = [
      base,
      fast,
      ...threaded.filter((r) => r.name.startsWith(label(c))),
      await dataParallel(c, 2),
    ];
    for (const r of group.slice(1)) r.ratio = base.medianMs / r.medianMs;
    rows.push(...group);
  }
  return rows;
}

if (process.env.TRAIN_SPEED_CHILD === 'threaded') {
  const threads = await enableWasmThreads(2);
  await initEngine('wasm');
  const rows = CASES.flatMap((c) =>
    singleThread(c, [['fast', `${label(c)}: improved kernels, wasm ${threads} threads`]]),
  );
  console.log(`RESULTS ${JSON.stringify(rows)}`);
  process.exit(0);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  printTable('training speed on wasm (ratios vs baseline kernels, same run)', await benchTrainSpeed());
}
