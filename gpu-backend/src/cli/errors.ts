// CLI failures: usage errors (bad flags, paths, config) exit 2 before anything is written; others exit 1.
export class UsageError extends Error {
  override name = 'UsageError';
}

export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;
