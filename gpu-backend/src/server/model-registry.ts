// The served model and its successor: a new model loads beside the old, takes over when ready, and the old
// one is freed once every request that could have seen it has finished.
import { realpath } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { readManifest } from '../io/model-files';
import type { BatcherOptions } from './batcher';
import { ModelService } from './model-service';

export interface ModelRegistryOptions {
  /** The name the model is served under, put on every log line (a backend may serve several). */
  name?: string;
  /** Where the model is now. Asked again on every reload, so a repointed symlink is followed. */
  locate: () => Promise<string>;
  batching: BatcherOptions;
  log: (event: Record<string, unknown>) => void;
}

/** One loaded model and the requests that arrived while it was current. */
interface Generation {
  service: ModelService;
  inFlight: number;
  /** Set once the model is replaced: called when its last request ends. */
  onIdle?: () => void;
}

export class ModelRegistry {
  private current: Generation | undefined;
  private loading: Promise<void> | undefined;
  /** A reload was asked for since the current load began: that load is stale, the latest request wins. */
  private again = false;
  private closed = false;
  private readonly retiring = new Set<Promise<void>>();

  private readonly log: (event: Record<string, unknown>) => void;

  constructor(private readonly o: ModelRegistryOptions) {
    const named = o.name === undefined ? {} : { name: o.name };
    this.log = (e) => o.log({ ...e, ...named });
  }

  /** The model new requests use; undefined only before the first load. */
  get service(): ModelService | undefined {
    return this.current?.service;
  }

  /**
   * Counts a request against the model current at its arrival; call the result when it ends. A request reads
   * `service` after it arrives, so it sees this model or a newer one: the old model is safe to free once the
   * requests counted here have ended.
   */
  enter(): () => void {
    const g = this.current;
    if (!g) return () => {};
    g.inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--g.inFlight === 0) g.onIdle?.();
    };
  }

  /** The first load; rejects when the model cannot be loaded (the server has nothing to serve). */
  async start(): Promise<ModelService> {
    const first = this.locate().then((dir) => ModelService.load(dir, this.o.batching));
    this.loading = first.then(
      () => undefined,
      () => undefined,
    );
    try {
      const service = await first;
      this.current = { service, inFlight: 0 };
      this.log({
        event: 'model_loaded',
        dir: service.dir,
        version: service.manifest.version,
        prototypes: service.manifest.prototypes.length,
      });
      return service;
    } finally {
      this.loading = undefined;
      // A SIGHUP during startup: the operator may have repointed the model meanwhile.
      if (this.again && this.current) void this.reload();
    }
  }

  /**
   * Loads the model `locate` names now and switches to it; keeps the old one on any failure. Calls while a load
   * runs coalesce: one load at a time, and the last call's target is what ends up served.
   */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.again = true;
    // Before the first model is in, start() picks the request up when it finishes.
    if (!this.loading && this.current) this.loading = this.run();
    return this.loading ?? Promise.resolve();
  }

  private async run(): Promise<void> {
    try {
      while (this.again && !this.closed) {
        this.again = false;
        await this.switchOnce();
      }
    } finally {
      this.loading = undefined;
    }
  }

  private async switchOnce(): Promise<void> {
    const old = this.current!;
    const from = old.service.manifest.version;
    const started = performance.now();
    let dir: string | undefined;
    try {
      dir = await this.locate();
      // SIGHUP with nothing changed must not load a second copy of the model being served.
      if ((await readManifest(dir)).version === from) {
        this.log({ event: 'model_unchanged', dir, version: from });
        return;
      }
      this.log({ event: 'model_loading', dir, serving: from });
      const service = await ModelService.load(dir, this.o.batching);
      if (this.again || this.closed) {
        // Superseded while it loaded: never serve a model the operator has already moved past.
        service.dispose();
        this.log({ event: 'model_switch_superseded', dir, version: service.manifest.version });
        return;
      }
      this.current = { service, inFlight: 0 };
      this.log({
        event: 'model_switch',
        from,
        to: service.manifest.version,
        dir,
        ms: Math.round(performance.now() - started),
      });
      this.retire(old);
    } catch (err) {
      this.log({ event: 'model_switch_failed', dir, error: (err as Error).message, serving: from });
    }
  }

  /**
   * The model directory's resolved path: files are read one by one, and a symlink repointed mid-load must not
   * mix two models.
   */
  private async locate(): Promise<string> {
    return realpath(await this.o.locate());
  }

  private retire(g: Generation): void {
    const idle = new Promise<void>((resolve) => {
      if (g.inFlight === 0) resolve();
      else g.onIdle = resolve;
    });
    const done = idle
      .then(() => g.service.batcher.drain())
      .then(() => {
        g.service.dispose();
        this.log({
          event: 'model_retired',
          version: g.service.manifest.version,
          tensors: tf.memory().numTensors,
        });
      })
      .catch((err) => this.log({ event: 'model_retire_failed', error: (err as Error).message }));
    this.retiring.add(done);
    void done.finally(() => this.retiring.delete(done));
  }

  /** After the last request: lets a running load finish and drops it, frees every model. */
  async close(): Promise<void> {
    this.closed = true;
    await this.loading;
    await Promise.all(this.retiring);
    const g = this.current;
    this.current = undefined;
    if (g) {
      await g.service.batcher.drain();
      g.service.dispose();
    }
  }
}
