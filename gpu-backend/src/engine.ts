// Picks the TF.js engine once at start-up: tfjs-node-gpu → tfjs-node → wasm with oneDNN kernels → wasm → cpu.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerGradients } from './kernels/gradients';
import { useLeanBackprop } from './kernels/lean-backprop';
import { registerNativeKernels } from './kernels/native';
import { enableWasmThreads } from './kernels/threaded-wasm';
import { registerWasmKernels } from './kernels/wasm';

/** 'native' is wasm with its heavy kernels in oneDNN and C++ (@protopool/native-kernels); 'wasm' is without. */
export const ENGINE_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'native', 'wasm', 'cpu'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export interface EngineInfo {
  /** The TF.js backend name in use: 'tensorflow' (native, GPU or CPU build), 'wasm' or 'cpu'. */
  backend: string;
  /** What runs, for people: e.g. "wasm (SIMD, 1 thread) + oneDNN 2.6.3 kernels (avx2, 2 threads)". */
  description: string;
  /** Whether the oneDNN kernels run, and if not, why (not built, no libdnnl, forced off, other engine). */
  nativeKernels: { active: boolean; detail: string };
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

const plural = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;

/** Compute threads asked for by --threads or $PROTOPOOL_THREADS ($PROTOPOOL_WASM_THREADS, its old name). */
export function requestedThreads(): number {
  const raw = process.env.PROTOPOOL_THREADS ?? process.env.PROTOPOOL_WASM_THREADS ?? 1;
  return Math.max(1, Math.floor(Number(raw)) || 1);
}

/**
 * wasm, single-threaded by default; `threads` > 1 starts the threaded-SIMD build with an n-thread
 * XNNPACK pool (measured here: ResNet-18 training 14.6 → 20.6 img/s with 2 threads). Opt-in because it
 * depends on tfjs internals (see kernels/threaded-wasm.ts).
 */
async function tryWasm(threads: number): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  let running = 1;
  if (threads > 1) {
    running = await enableWasmThreads(threads);
  } else {
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
    await tf.ready();
  }
  registerWasmKernels('wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${plural(running)})`;
}

/**
 * wasm on one thread with the native kernels (convolutions, matMuls, batch norm, Adam, …) on `threads`
 * OpenMP threads (wasm's own pool would compete with them for the same cores). Throws, naming the reason,
 * when the addon is unavailable.
 */
async function tryNativeKernels(threads: number): Promise<string> {
  if (process.env.PROTOPOOL_NATIVE === '0') throw new Error('turned off by PROTOPOOL_NATIVE=0');
  let loaded: Awaited<typeof import('@protopool/native-kernels')>;
  try {
    loaded = await import('@protopool/native-kernels');
  } catch (err) {
    throw new Error(`@protopool/native-kernels is not installed (${reason(err)})`);
  }
  const load = loaded.loadNativeKernels();
  if (!load.ok) throw new Error(load.reason);
  load.kernels.setThreads(threads);
  const base = await tryWasm(1);
  registerNativeKernels(load.kernels);
  const info = load.kernels.info();
  return `${base} + oneDNN ${info.onednn} kernels (${info.isa}, ${plural(info.threads)})`;
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
  const threads = requestedThreads();
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
    ['native', () => tryNativeKernels(threads)],
    ['wasm', () => tryWasm(threads)],
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
      registerGradients();
      useLeanBackprop();
      const native = name === 'native';
      const whyNot = skipped.find((s) => s.startsWith('native: '))?.slice('native: '.length);
      current = {
        backend: tf.getBackend(),
        description,
        skipped,
        nativeKernels: {
          active: native,
          detail: native
            ? description.slice(description.indexOf('oneDNN'))
            : (whyNot ?? `not used with --engine ${choice}`),
        },
      };
      return current;
    } catch (err) {
      skipped.push(`${name}: ${reason(err)}`);
    }
  }
  throw new Error(`no TF.js engine could start (${skipped.join('; ')})`);
}

/** The engine in one line for logs and /ping: what runs, and on wasm why the oneDNN kernels do not. */
export function engineSummary(info: EngineInfo): string {
  if (info.nativeKernels.active || info.backend !== 'wasm') return info.description;
  return `${info.description}; native kernels off: ${info.nativeKernels.detail}`;
}
