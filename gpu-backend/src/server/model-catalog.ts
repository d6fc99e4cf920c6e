// The named models one backend serves: a ModelRegistry per name (each switches on its own), one the default.
import type { ModelName } from '@protopool/shared';
import type { BatcherOptions } from './batcher';
import { ModelRegistry } from './model-registry';
import type { ModelService } from './model-service';

/** What the routes read: the names served, the default, and each name's current model. */
export interface ServedModels {
  /** In the operator's order (the order of --model flags). */
  readonly names: readonly ModelName[];
  /** The model answering requests that name none. */
  readonly defaultName: ModelName;
  /** The model served under `name` now; undefined while it loads (or for a name not served). */
  service(name: string): ModelService | undefined;
}

/** Whether every served model is in: the backend is ready only then (a client may ask for any of them). */
export function allLoaded(models: ServedModels): boolean {
  return models.names.every((n) => models.service(n) !== undefined);
}

/** One model under one name, for an app built around a single service (tests, embedding). */
export function oneModel(name: ModelName, service: () => ModelService | undefined): ServedModels {
  return { names: [name], defaultName: name, service: (n) => (n === name ? service() : undefined) };
}

export interface CatalogModel {
  name: ModelName;
  /** Where the model is now; asked again on every reload, so a repointed symlink is followed. */
  locate: () => Promise<string>;
}

export interface ModelCatalogOptions {
  models: CatalogModel[];
  /** Default: the first model. */
  defaultModel?: ModelName;
  batching: BatcherOptions;
  log: (event: Record<string, unknown>) => void;
}

export class ModelCatalog implements ServedModels {
  readonly names: readonly ModelName[];
  readonly defaultName: ModelName;
  private readonly registries: ReadonlyMap<ModelName, ModelRegistry>;

  constructor(private readonly o: ModelCatalogOptions) {
    const names = o.models.map((m) => m.name);
    if (names.length === 0) throw new Error('a catalog needs at least one model');
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`model name "${twice}" is given twice`);
    const defaultName = o.defaultModel ?? names[0]!;
    if (!names.includes(defaultName))
      throw new Error(`default model "${defaultName}" is not served (${names.join(', ')})`);
    this.names = names;
    this.defaultName = defaultName;
    // Each model has its own batcher: models of different input shapes never share a forward pass.
    this.registries = new Map(
      o.models.map((m) => [
        m.name,
        new ModelRegistry({ name: m.name, locate: m.locate, batching: o.batching, log: o.log }),
      ]),
    );
  }

  service(name: string): ModelService | undefined {
    return this.registries.get(name)?.service;
  }

  /** Every model current now, in name order (unloaded ones left out). */
  services(): ModelService[] {
    return [...this.registries.values()].flatMap((r) => (r.service ? [r.service] : []));
  }

  /**
   * Loads every model (concurrently: most of a load is reading files). Rejects, naming the model, when any
   * cannot be loaded, but only after every load has settled, so close() finds nothing half-built.
   */
  async start(): Promise<void> {
    const loads = [...this.registries].map(([name, r]) =>
      r.start().catch((err: Error) => {
        throw new Error(`model "${name}": ${err.message}`);
      }),
    );
    const settled = await Promise.allSettled(loads);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    this.o.log({
      event: 'models_ready',
      default: this.defaultName,
      models: Object.fromEntries(this.names.map((n) => [n, this.service(n)!.manifest.version])),
    });
  }

  /**
   * Counts a request against every model current at its arrival: which model it asks for is only known once
   * its query or attributes are parsed, and holding all of them is one counter increment each.
   */
  enter(): () => void {
    const leaves = [...this.registries.values()].map((r) => r.enter());
    return () => {
      for (const leave of leaves) leave();
    };
  }

  /** Reloads every model where it is now; a model whose version did not change stays as it is (registry). */
  async reload(): Promise<void> {
    await Promise.all([...this.registries.values()].map((r) => r.reload()));
  }

  /** Lets the queued work of every current model finish. */
  async drain(): Promise<void> {
    await Promise.all(this.services().map((s) => s.batcher.drain()));
  }

  /** After the last request: frees every model. */
  async close(): Promise<void> {
    await Promise.all([...this.registries.values()].map((r) => r.close()));
  }
}
