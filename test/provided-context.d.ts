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
    /** The edge suite's backend's models, the default first, as their own files say. */
    servedModels: {
      /** A PNG no other suite sends, base64. */
      image: string;
      models: {
        name: string;
        version: string;
        classes: string[];
        input: { height: number; width: number; channels: 1 | 3 };
        /** A prototype with a source patch (the highest id) and its PNG file, base64. */
        prototype: { id: number; png: string };
        /** `image` as this model's input tensor (the backend's preprocessing), base64. */
        imageTensor: string;
      }[];
    };
  }
}
