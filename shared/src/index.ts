// @protopool/shared: the one contract between the edge and the backend. Pure: no I/O, any runtime.
export * from './base64';
export * from './classify-body';
export * from './errors';
export * from './explanation';
export * from './geometry';
export * from './hmac';
export * from './ids';
export * from './invocations';
export * from './manifest';
export * from './models';
export * from './novelty';
export * from './request';
export * from './tracing';
export * from './wire';
