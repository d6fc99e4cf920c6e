// The few Web-platform globals this package uses; both Node 20 and workerd provide them.
declare const crypto: {
  subtle: { digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer> };
};
