// The edge's view of the model backend; adapters: HTTP (HMAC-signed), SageMaker runtime, in-process.
import {
  type ClassifyOptions,
  type Explanation,
  type ModelList,
  type ModelManifest,
  type ModelName,
  ProtocolError,
  type RequestTrace,
  type WireTensor,
} from '@protopool/shared';

/**
 * Each call may carry the client request's trace: transports forward it inside the signed request, so the
 * backend's log line for the call bears the edge's request id. `model` names one of the backend's models
 * (undefined: its default); a name it does not serve fails with its not_found, whose message lists the
 * served ones.
 */
export interface Backend {
  readonly name: string;
  explain(
    tensor: WireTensor,
    options: ClassifyOptions,
    trace?: RequestTrace,
    model?: ModelName,
  ): Promise<Explanation>;
  manifest(trace?: RequestTrace, model?: ModelName): Promise<ModelManifest>;
  /** PNG bytes of a prototype's source patch, or null when the backend has none. */
  prototypeImage(id: number, trace?: RequestTrace, model?: ModelName): Promise<Uint8Array | null>;
  /** The models the backend serves and its default. */
  models(trace?: RequestTrace): Promise<ModelList>;
}

/**
 * A failure the edge reports to its client with this code (and the backend's message when it had one): a
 * ProtocolError raised by a transport, so the app answers both the same way.
 */
export class BackendError extends ProtocolError {
  override name = 'BackendError';
}
