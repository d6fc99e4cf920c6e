// Data specs for the CLI ("fashion-mnist", "fashion-mnist:<dir>", …) to opened datasets.
import type { Dataset } from './dataset';
import { openFashionMnist } from './fashion-mnist';

export class DataSpecError extends Error {
  override name = 'DataSpecError';
}

const KINDS = ['fashion-mnist'] as const;

export async function openDataset(spec: string): Promise<Dataset> {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  if (arg === '') throw new DataSpecError(`data spec "${spec}": nothing after ":"`);
  switch (kind) {
    case 'fashion-mnist':
      return openFashionMnist(arg);
    default:
      throw new DataSpecError(
        `unknown data spec "${spec}": expected one of ${KINDS.map((k) => `${k}[:<dir>]`).join(', ')}`,
      );
  }
}
