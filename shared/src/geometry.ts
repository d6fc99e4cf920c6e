// Boxes and grid cells: where on an image or feature grid evidence sits.
import { z } from 'zod';

const Coord = z.number().int().min(0);

/** A feature-grid cell (row h, column w). */
export const Cell = z.object({ h: Coord, w: Coord });
export type Cell = z.infer<typeof Cell>;

/** Half-open pixel box [x0, x1) × [y0, y1) in input-image coordinates. */
export const Box = z
  .object({ x0: Coord, y0: Coord, x1: Coord, y1: Coord })
  .refine((b) => b.x1 > b.x0 && b.y1 > b.y0, { message: 'box must have x1 > x0 and y1 > y0' });
export type Box = z.infer<typeof Box>;
