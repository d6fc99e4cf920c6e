// The edge's view of the model backend; adapters: HTTP (HMAC-signed), SageMaker runtime, in-process.
import {
  type ClassifyOptions,
  type Explanation,
  type ModelManifest,
  ProtocolError,
  type RequestTrace,
  type WireTensor,
} from '@protopool/shared';

/**
 * Each call may carry the client request's trace: transports forward it inside the signed request, so the
 * backend's log line for the call bears the edge's request id.
 */
export interface Backend {
  readonly name: string;
  explain(tensor: WireTensor, options: ClassifyOptions, trace?: RequestTrace): Promise<Explanation>;
  manifest(trace?: RequestTrace): Promise<ModelManifest>;
  /** PNG bytes of a prototype's source patch, or null when the backend has none. */
  prototypeImage(id: number, trace?: RequestTrace): Promise<Uint8Array | null>;
}

/**
 * A failure the edge reports to its client with this code (and the backend's message when it had one): a
 * ProtocolError raised by a transport, so the app answers both the same way.
 */
export class BackendError extends ProtocolError {
  override name = 'BackendError';
}
