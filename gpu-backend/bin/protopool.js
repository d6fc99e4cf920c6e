#!/usr/bin/env node
// `protopool` CLI entry: runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/index.ts');
// Exit explicitly: threaded wasm (--threads) keeps worker threads alive that would hold the process open.
process.exit(await main(process.argv.slice(2)));
