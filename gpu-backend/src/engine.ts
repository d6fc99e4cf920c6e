// Picks the TF.js engine once at start-up: tfjs-node-gpu → tfjs-node → wasm (SIMD) → cpu.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerConvGradientKernels } from './kernels/register';
import { registerSegmentSumKernel } from './kernels/segment-sum';
import { enableWasmThreads } from './kernels/threaded-wasm';
import { registerTopKGradient } from './kernels/topk-grad';

export const ENGINE_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export interface EngineInfo {
  /** The TF.js backend name in use: 'tensorflow' (native, GPU or CPU build), 'wasm' or 'cpu'. */
  backend: string;
  /** What runs, for people: e.g. "wasm (SIMD, 1 thread)" or "tensorflow-gpu (libtensorflow CUDA)". */
  description: string;
  /** Engines tried before this one and why each was passed over. */
  skipped: string[];
}

let current: EngineInfo | undefined;

export function engineInfo(): EngineInfo | undefined {
  return current;
}

function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.slice(0, 160);
}

async function tryNative(pkg: string): Promise<void> {
  // Importing can throw for more than "not installed": a half-installed package without its native
  // addon throws while loading. Either way this engine is unavailable.
  await import(/* @vite-ignore */ pkg);
  await tf.setBackend('tensorflow');
  await tf.ready();
}

/**
 * wasm, single-threaded by default; PROTOPOOL_WASM_THREADS=n (or --threads n) starts the threaded-SIMD
 * build with an n-thread XNNPACK pool (measured here: ResNet-18 training 14.6 → 20.6 img/s with 2 threads).
 * Opt-in because it depends on tfjs internals (see kernels/threaded-wasm.ts).
 */
async function tryWasm(): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const threads = Math.max(1, Number(process.env.PROTOPOOL_WASM_THREADS ?? 1) || 1);
  let running = 1;
  if (threads > 1) {
    running = await enableWasmThreads(threads);
  } else {
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
    await tf.ready();
  }
  registerConvGradientKernels('wasm');
  registerSegmentSumKernel('wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${running} thread${running === 1 ? '' : 's'})`;
}

/**
 * Initialises the engine: `choice` (or env PROTOPOOL_ENGINE) forces one; 'auto' takes the best present.
 * Idempotent: a second call returns the engine already chosen.
 */
export async function initEngine(
  choice: EngineChoice | string = process.env.PROTOPOOL_ENGINE ?? 'auto',
): Promise<EngineInfo> {
  if (current) return current;
  if (!(ENGINE_CHOICES as readonly string[]).includes(choice)) {
    throw new Error(`unknown engine "${choice}": expected one of ${ENGINE_CHOICES.join(', ')}`);
  }
  const skipped: string[] = [];
  const want = (name: EngineChoice) => choice === 'auto' || choice === name;
  const attempts: [EngineChoice, () => Promise<string>][] = [
    [
      'tensorflow-gpu',
      async () => {
        await tryNative('@tensorflow/tfjs-node-gpu');
        return 'tensorflow-gpu (libtensorflow, CUDA)';
      },
    ],
    [
      'tensorflow',
      async () => {
        await tryNative('@tensorflow/tfjs-node');
        return 'tensorflow (libtensorflow, CPU)';
      },
    ],
    ['wasm', tryWasm],
    [
      'cpu',
      async () => {
        await tf.setBackend('cpu');
        await tf.ready();
        return 'cpu (pure JavaScript)';
      },
    ],
  ];
  for (const [name, attempt] of attempts) {
    if (!want(name)) continue;
    try {
      const description = await attempt();
      registerTopKGradient();
      current = { backend: tf.getBackend(), description, skipped };
      return current;
    } catch (err) {
      skipped.push(`${name}: ${reason(err)}`);
    }
  }
  throw new Error(`no TF.js engine could start (${skipped.join('; ')})`);
}
