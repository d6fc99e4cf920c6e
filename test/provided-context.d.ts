// Values the edge suite's Node-side global setup hands to the workerd tests (vitest provide/inject).
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    backendUrl: string;
    sagemakerUrl: string;
    /** GET: the edge suite's backend process's log lines so far (JSON array of strings). */
    backendLogsUrl: string;
    /** Per image kind: the encoded image and the backend's preprocessed tensor, both base64. */
    preprocessing: Record<string, { image: string; tensor: string }>;
  }
}
