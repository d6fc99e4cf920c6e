// The Worker under test, reached through its real fetch handler inside workerd.
import { exports } from 'cloudflare:workers';

export const worker = (exports as unknown as { default: Fetcher }).default;
