// Lets the threaded-SIMD wasm build (XNNPACK thread pool) start under Node, which tfjs 4.22 refuses.
import { resolveObjectURL } from 'node:buffer';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname } from 'node:path';
import { Worker as NodeWorker, type WorkerOptions } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

/*
 * Why this is needed (tfjs issue #3830): in Node, tfjs reports WASM_HAS_MULTITHREAD_SUPPORT=false, and
 * even when forced on, Emscripten's pthread pool does `new Worker(URL.createObjectURL(blob))`, which
 * Node rejects (`blob:nodedata:` URLs are neither paths nor visible to other threads). Node can,
 * however, clone a Blob into a worker. So each pthread worker is started from BOOTSTRAP below, which
 * receives the Blob, evaluates the Emscripten worker script from it, and turns the main-script Blob of
 * the "load" message into text before Emscripten's handler sees it. The bundled factory refers to a
 * few rollup/tslib helpers that only exist in the main bundle; BOOTSTRAP defines stand-ins.
 */
const BOOTSTRAP = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
globalThis.commonjsGlobal = globalThis;
globalThis.require$$0 = require('node:fs');
globalThis.require$$1 = require('node:path');
globalThis.require$$3 = require('node:perf_hooks');
globalThis.require$$4 = require('node:os');
globalThis.__values = function (o) {
  const s = typeof Symbol === 'function' && Symbol.iterator, m = s && o[s];
  if (m) return m.call(o);
  let i = 0;
  return { next: () => ({ value: o && o[i++], done: !o || i > o.length }) };
};
globalThis.__read = function (o, n) { return Array.from(o).slice(0, n === undefined ? undefined : n); };
globalThis.__spreadArray = function (to, from) { return to.concat(Array.from(from)); };
const scripts = new Map();
let chain = workerData.script.text().then((text) => {
  const hook = 'parentPort.on("message",data=>onmessage({data:data}));';
  if (!text.includes(hook)) throw new Error('unexpected Emscripten worker script: tfjs version changed?');
  (0, eval)(text.replace(hook, ''));
  const load = globalThis.importScripts;
  globalThis.importScripts = (f) => (scripts.has(f) ? (0, eval)(scripts.get(f)) : load(f));
});
parentPort.on('message', (data) => {
  chain = chain.then(async () => {
    if (data && data.cmd === 'load' && data.urlOrBlob && typeof data.urlOrBlob !== 'string') {
      scripts.set('tfjs-threaded-main.js', await data.urlOrBlob.text());
      data.urlOrBlob = 'tfjs-threaded-main.js';
    }
    globalThis.onmessage({ data });
  });
  chain.catch((e) => { throw e; });
});
`;

/** worker_threads.Worker that also accepts the `blob:nodedata:` URLs Emscripten creates. */
class BlobAwareWorker extends NodeWorker {
  constructor(filename: string | URL, options?: WorkerOptions) {
    const url = String(filename);
    const blob = url.startsWith('blob:') ? resolveObjectURL(url) : undefined;
    if (blob) super(BOOTSTRAP, { ...options, eval: true, workerData: { script: blob } });
    else super(filename, options);
  }
}

let installed = false;

/**
 * Starts the wasm backend from its threaded-SIMD build with `threads` XNNPACK threads and makes it the
 * active backend; a later `initEngine('wasm')` keeps it. Returns the thread count the backend reports
 * (1 means the threaded build did not take). Must run before anything initialises the wasm backend:
 * if it already exists, nothing changes and its thread count is returned.
 */
export async function enableWasmThreads(threads: number): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // Not tf.findBackend: it would start initialising the backend (single-threaded) on the spot.
  if (tf.engine().registry.wasm) return wasm.getThreadsCount();
  if (!installed) {
    // Emscripten assigns global.Worker = worker_threads.Worker while it starts; pin ours instead.
    Object.defineProperty(globalThis, 'Worker', {
      configurable: true,
      get: () => BlobAwareWorker,
      set: () => {},
    });
    installed = true;
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const require = createRequire(import.meta.url);
  wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  // The C++ side caps the pool at (logical cores / 2), assuming two hyper-threads per core; a 2-vCPU
  // VM then gets 1 thread. Its static initialiser reads os.cpus() once, so widen it only meanwhile.
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus();
    return Array.from({ length: Math.max(real.length, threads) * 2 }, (_, i) => real[i % real.length]!);
  };
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('threaded wasm backend failed to initialise');
    await tf.ready();
  } finally {
    os.cpus = cpus;
  }
  return wasm.getThreadsCount();
}

/** The XNNPACK thread count of the running wasm backend (1 for the non-threaded builds). */
export async function wasmThreadsCount(): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}
