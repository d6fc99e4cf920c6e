// Words on the explanation pictures (class, probability, each slot's numbers), drawn by pureimage in DejaVu
// Sans from npm (dejavu-fonts-ttf): no system font, no network, the same pixels on every machine.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as PImage from 'pureimage';
import type { Rgba } from './render';

const FAMILY = 'DejaVu Sans';
let loaded = false;

function ensureFont(): void {
  if (loaded) return;
  const pkg = createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json');
  PImage.registerFont(join(dirname(pkg), 'ttf', 'DejaVuSans.ttf'), FAMILY).loadSync();
  loaded = true;
}

export interface TextLine {
  text: string;
  /** Pixels; the first line of a card is larger. */
  size?: number;
  color?: string;
}

/** Lines of dark text on white, `width` wide, each as tall as its font plus a third. */
export function textBlock(lines: readonly TextLine[], width: number, pad = 6): Rgba {
  ensureFont();
  const heights = lines.map((l) => Math.ceil((l.size ?? 13) * 1.35));
  const height = heights.reduce((a, b) => a + b, 0) + 2 * pad;
  const img = PImage.make(width, height);
  const ctx = img.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  let y = pad;
  lines.forEach((line, i) => {
    const size = line.size ?? 13;
    y += heights[i]!;
    ctx.fillStyle = line.color ?? '#222222';
    ctx.font = `${size}px '${FAMILY}'`;
    // Baseline a quarter-line above the row's bottom, so descenders stay inside the row.
    ctx.fillText(line.text, pad, y - Math.round(size * 0.3));
  });
  return { rgba: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), width, height };
}
