import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDataverseWebhook } from '../src/dataverse';
import { largeCreateMultiple } from '../src/dataverse/samplePayloads';
import { median } from './stats';

/** The 8 KB payload: the sample of Microsoft's "Use webhooks" page, as it ships in samples/. */
export function docsSampleBody(): Buffer {
  return readFileSync(path.resolve(__dirname, '..', '..', 'samples', '05-contact-update-async-postop-docs-sample.json'));
}

function nanosPerCall(work: () => unknown, batch: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < batch; i++) work();
  return Number(process.hrtime.bigint() - start) / batch;
}

/**
 * Times a baseline and a candidate in alternating rounds, so that whatever else the machine is
 * doing weighs on both alike; the ratio is the median of the per-round ratios.
 */
export function compare(baseline: () => unknown, candidate: () => unknown, batch: number, rounds = 21) {
  for (let i = 0; i < batch * 3; i++) {
    baseline();
    candidate();
  }
  const base: number[] = [];
  const cand: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    base.push(nanosPerCall(baseline, batch));
    cand.push(nanosPerCall(candidate, batch));
    ratios.push(cand[round]! / base[round]!);
  }
  const extra = base.map((nanos, round) => cand[round]! - nanos);
  return { baselineNanos: median(base), candidateNanos: median(cand), ratio: median(ratios), extraNanos: median(extra) };
}

export interface ParseFigure {
  payload: string;
  bytes: number;
  jsonParseMicros: number;
  parseMicros: number;
  ratio: number;
  /**
   * The least a normalizing parser can cost against JSON.parse: JSON.parse, then one copy of the
   * tree it gave (every object and array rebuilt, key/value arrays as null-prototype records, as
   * the event holds them), with no validation and no typing at all.
   */
  copyFloorRatio: number;
}

/** A plain copy of a parsed JSON tree, key/value arrays made records: see `copyFloorRatio`. */
function copyTree(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const first: unknown = value[0];
    if (typeof first === 'object' && first !== null && typeof (first as { key?: unknown }).key === 'string') {
      const record: Record<string, unknown> = Object.create(null);
      for (const pair of value as Array<{ key: string; value: unknown }>) record[pair.key] = copyTree(pair.value);
      return record;
    }
    return value.map(copyTree);
  }
  const copy: Record<string, unknown> = {};
  for (const key in value) copy[key] = copyTree((value as Record<string, unknown>)[key]);
  return copy;
}

export function benchParse(): ParseFigure[] {
  const payloads = [
    { payload: 'docs sample (contact Update)', body: docsSampleBody(), batch: 2000 },
    { payload: 'CreateMultiple, 250 KB', body: Buffer.from(largeCreateMultiple(250 * 1024)), batch: 40 },
  ];
  return payloads.map(({ payload, body, batch }) => {
    const result = parseDataverseWebhook({ body, headers: {} });
    if (!result.ok) throw new Error(`benchmark payload does not parse: ${result.error.message}`);
    // Both sides start from the bytes as received, so UTF-8 decoding is counted on each.
    const timing = compare(
      () => JSON.parse(body.toString('utf8')),
      () => parseDataverseWebhook({ body, headers: {} }),
      batch,
    );
    const floor = compare(
      () => JSON.parse(body.toString('utf8')),
      () => copyTree(JSON.parse(body.toString('utf8'))),
      batch,
      11,
    );
    return {
      payload,
      bytes: body.length,
      jsonParseMicros: timing.baselineNanos / 1000,
      parseMicros: timing.candidateNanos / 1000,
      ratio: timing.ratio,
      copyFloorRatio: floor.ratio,
    };
  });
}
