// Writes a model's training report (report.html beside its model directory, or where asked).
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readReportData } from './report-data';
import { reportHtml } from './report-html';

/** Chart.js's self-contained browser build, to inline: the page must open without a network. */
async function chartLibrary(): Promise<string> {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFile(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** The report of `modelDir`, written to `out` (default: report.html in the run directory that holds it). */
export async function writeReport(modelDir: string, out = join(dirname(modelDir), 'report.html')) {
  const html = reportHtml(await readReportData(modelDir), await chartLibrary());
  await writeFile(out, html);
  return { path: out, bytes: Buffer.byteLength(html) };
}
