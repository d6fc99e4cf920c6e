// Wire-format throughput: binary frame and JSON form against plain JSON number arrays (the naive baseline).
import { decodeFrame, decodeJson, encodeFrame, encodeJson, tensor } from '@protopool/shared';
import { type BenchResult, measure } from './measure';

export async function benchWire(): Promise<BenchResult[]> {
  const shape = [32, 64, 64, 3]; // a batch of 32 images at 64 px: 393,216 floats
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const t = tensor('float32', shape, data);
  const frame = encodeFrame(t);
  const json = JSON.stringify(encodeJson(t));
  const naive = JSON.stringify({ shape, data: Array.from(data) });

  const baseline = measure('naive JSON number array (encode+decode)', () => {
    const parsed = JSON.parse(JSON.stringify({ shape, data: Array.from(data) })) as { data: number[] };
    Float32Array.from(parsed.data);
  });
  const binary = measure('binary frame (encode+decode)', () => decodeFrame(encodeFrame(t)));
  const base64 = measure('JSON base64 form (encode+decode)', () =>
    decodeJson(JSON.parse(JSON.stringify(encodeJson(t)))),
  );
  return [
    { ...baseline, extra: { bytes: naive.length } },
    { ...binary, ratio: baseline.medianMs / binary.medianMs, extra: { bytes: frame.length } },
    { ...base64, ratio: baseline.medianMs / base64.medianMs, extra: { bytes: json.length } },
  ];
}
