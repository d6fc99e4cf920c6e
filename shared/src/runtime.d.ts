// The few Web-platform globals this package uses; both Node 20 and workerd provide them.
interface SubtleKey {
  readonly type: string;
}
declare const crypto: {
  randomUUID(): string;
  subtle: {
    digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>;
    importKey(
      format: 'raw',
      key: Uint8Array,
      algorithm: { name: 'HMAC'; hash: 'SHA-256' },
      extractable: false,
      usages: ['sign'] | ['verify'],
    ): Promise<SubtleKey>;
    sign(algorithm: 'HMAC', key: SubtleKey, data: Uint8Array): Promise<ArrayBuffer>;
    verify(algorithm: 'HMAC', key: SubtleKey, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
  };
};
declare class TextEncoder {
  encode(input: string): Uint8Array;
}
declare class TextDecoder {
  decode(input: Uint8Array): string;
}
interface FormDataFile {
  readonly type: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}
declare class Response {
  constructor(body: Uint8Array, init: { headers: Record<string, string> });
  formData(): Promise<{ get(name: string): string | FormDataFile | null }>;
}
declare class URLSearchParams {
  constructor(init?: string | Record<string, string>);
  get(name: string): string | null;
  set(name: string, value: string): void;
  delete(name: string): void;
  entries(): IterableIterator<[string, string]>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
  toString(): string;
}
