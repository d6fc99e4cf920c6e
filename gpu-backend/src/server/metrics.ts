// The backend's Prometheus metrics, in a registry of each app's own (tests and several apps never collide).
import * as tf from '@tensorflow/tfjs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BatchRun } from './batcher';
import type { ServedModels } from './model-catalog';
import type { ModelService } from './model-service';

// Latency buckets in seconds: a tiny model answers in ~1 ms, a large one on CPU in seconds.
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Batch sizes: powers of two up to the largest --max-batch anyone sensibly runs.
const SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class BackendMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'status'>;
  private readonly duration: Histogram<'route'>;
  private readonly queueWait: Histogram;
  private readonly inference: Histogram;
  private readonly batchSize: Histogram;
  private readonly inFlight: Gauge;

  constructor(models: ServedModels, engine: string) {
    const services = () => models.names.flatMap((n) => models.service(n) ?? []);
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'protopool_requests_total',
      help: 'HTTP requests answered, by route pattern and status code',
      labelNames: ['route', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'protopool_request_duration_seconds',
      help: 'Time from a request arriving to its response, by route pattern',
      labelNames: ['route'],
      buckets: SECONDS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'protopool_queue_wait_seconds',
      help: 'Time a classification waited in the micro-batch queue before its batch ran',
      buckets: SECONDS,
      registers,
    });
    this.inference = new Histogram({
      name: 'protopool_inference_seconds',
      help: 'Time one batch took to run through the model and explain',
      buckets: SECONDS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'protopool_batch_size',
      help: 'Classifications per forward pass',
      buckets: SIZES,
      registers,
    });
    this.inFlight = new Gauge({
      name: 'protopool_in_flight_requests',
      help: 'HTTP requests being handled now',
      registers,
    });
    // The rest are read when scraped, so they are never stale and cost nothing between scrapes.
    new Gauge({
      name: 'protopool_queue_depth',
      help: 'Classifications queued or running, over every served model (--max-queue limits each model)',
      registers,
      collect() {
        this.set(services().reduce((sum, s) => sum + s.batcher.depth, 0));
      },
    });
    new Gauge({
      name: 'protopool_tensors',
      help: 'Live TF.js tensors (flat under load, or memory leaks)',
      registers,
      collect() {
        this.set(tf.memory().numTensors);
      },
    });
    new Gauge({
      name: 'protopool_model_info',
      help: 'One series per served model: its name, version and the engine as labels (value 1; absent while it loads)',
      labelNames: ['name', 'version', 'engine'],
      registers,
      collect() {
        this.reset();
        for (const name of models.names) {
          const s = models.service(name);
          if (s) this.set({ name, version: s.manifest.version, engine }, 1);
        }
      },
    });
    // Process memory, CPU, event-loop lag and GC, under prom-client's standard names.
    collectDefaultMetrics({ register: this.registry });
  }

  /** One answered request. */
  request(route: string, status: number, ms: number): void {
    this.requests.inc({ route, status: String(status) });
    this.duration.observe({ route }, ms / 1000);
  }

  /** The batcher of the service being served reports each batch here (set again after a model change). */
  watch(s: ModelService): void {
    s.batcher.onBatch = this.batch;
  }

  private readonly batch = (run: BatchRun): void => {
    this.batchSize.observe(run.size);
    this.inference.observe(run.runMs / 1000);
    for (const q of run.queueMs) this.queueWait.observe(q / 1000);
  };

  begin(): () => void {
    this.inFlight.inc();
    return () => this.inFlight.dec();
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
