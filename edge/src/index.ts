// The edge Worker: the public API in front of the ProtoPool backend.
import { createApp } from './app';

export type { Env } from './env';
export default createApp();
