// Human progress (a bar per epoch on stderr) or machine progress (JSON lines on stdout), plus the log file.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import cliProgress from 'cli-progress';
import type { TrainEvents } from '../train/trainer';

export function trainReporter(opts: { json: boolean; logFile: string }): TrainEvents & { stop(): void } {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = (event: Record<string, unknown>) => {
    const line = JSON.stringify({ time: new Date().toISOString(), ...event });
    appendFileSync(opts.logFile, `${line}\n`);
    if (opts.json) process.stdout.write(`${line}\n`);
  };
  let bar: cliProgress.SingleBar | undefined;
  const interactive = !opts.json;
  return {
    onEpochStart({ epoch, phase, steps, epochs }) {
      if (!interactive) return;
      bar = new cliProgress.SingleBar(
        {
          format: `epoch ${epoch + 1}/${epochs} ${phase.padEnd(9)} {bar} {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 20,
          noTTYOutput: true,
          notTTYSchedule: 10_000,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(steps, 0, { loss: '-', acc: '-', ips: '-' });
    },
    onStep(s) {
      bar?.update(s.step, {
        loss: s.loss.toFixed(4),
        acc: `${(100 * s.accuracy).toFixed(1)}%`,
        ips: s.imagesPerSecond.toFixed(0),
      });
    },
    onEpochEnd(r) {
      bar?.stop();
      bar = undefined;
      if (interactive) {
        process.stderr.write(
          `  → test accuracy ${(100 * r.testAccuracy).toFixed(2)}%, loss ${r.testLoss.toFixed(4)}, prototypes used ${r.prototypesUsed}, ${r.seconds.toFixed(0)} s\n`,
        );
      }
    },
    onLog: log,
    stop() {
      bar?.stop();
    },
  };
}
