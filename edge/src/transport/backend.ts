// The edge's view of the model backend; adapters: HTTP (HMAC-signed), SageMaker runtime, in-process.
import type { ClassifyOptions, ErrorCode, Explanation, ModelManifest, WireTensor } from '@protopool/shared';

export interface Backend {
  readonly name: string;
  explain(tensor: WireTensor, options: ClassifyOptions): Promise<Explanation>;
  manifest(): Promise<ModelManifest>;
  /** PNG bytes of a prototype's source patch, or null when the backend has none. */
  prototypeImage(id: number): Promise<Uint8Array | null>;
}

/** A failure the edge reports to its client with this code (and the backend's message when it had one). */
export class BackendError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'BackendError';
  }
}
