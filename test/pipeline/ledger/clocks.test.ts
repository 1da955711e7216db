import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { on } from '../../../src/handlerApi';
import { registryOf } from '../../../src/handlerApi/load';
import { silentLog } from '../../../src/observability/log';
import { deliveryKey } from '../../../src/pipeline/deliveryKey';
import { type EventEnvelope, parseEnvelope } from '../../../src/pipeline/envelope';
import { Ledger, SERVICE_CLOCK_MARGIN_MS } from '../../../src/pipeline/ledger/ledger';
import { type ProcessOutcome, processEnvelope } from '../../../src/pipeline/process';
import { readProcessSettings } from '../../../src/settings';
import { createStorageClients, type StorageClients } from '../../../src/storage/clients';
import { fixture } from '../../support/fixtures';
import { ingest } from '../../support/processing';
import { drainQueue, isolatedStorage } from '../../support/storage';

/**
 * Clocks and stalls (issue 26, 3). A unit's lease is measured on the Table service's own clock by
 * whoever finds it held, and on its holder's monotonic clock by the holder (src/pipeline/ledger/):
 * an instance whose clock runs ahead or behind changes nothing; a holder whose event loop stalls
 * keeps its unit while the stall is shorter than the tolerated one (docs/reliability.md), and once
 * the unit was taken over meanwhile, writes nothing more there and does not fail its message.
 */

interface Run {
  by: string;
  start: number;
  end: number;
  effect: boolean;
}

/** One processor: its own storage clients (another app instance), its clock, its handler's runs. */
function instance(name: string, storage: StorageClients, options: { clockMs?: number; runMs: number; leaseMs: number; runs: Run[] }) {
  const own = createStorageClients(inject('azuriteConnectionString'), { names: storage.names });
  const slow = on({ name: 'slow', entity: '*', message: '*' }, async (_event, ctx) => {
    const run: Run = { by: name, start: Date.now(), end: Number.NaN, effect: false };
    options.runs.push(run);
    try {
      await sleep(options.runMs, undefined, { signal: ctx.signal });
      run.effect = true;
    } finally {
      run.end = Date.now();
    }
  });
  const handlers = registryOf([slow]);
  const settings = { ...readProcessSettings({}), leaseMs: options.leaseMs, deferJitterMs: 0 };
  const now = () => Date.now() + (options.clockMs ?? 0);
  return (envelope: EventEnvelope): Promise<ProcessOutcome> =>
    processEnvelope(envelope, { storage: own, handlers, settings, log: silentLog, deliveryCount: 1, now });
}

async function oneEnvelope(storage: StorageClients): Promise<EventEnvelope> {
  const body = JSON.parse(
    fixture('06-')
      .body.toString('utf8')
      .replace(/^\uFEFF/, ''),
  );
  await ingest(storage, JSON.stringify({ ...body, CorrelationId: randomUUID() }));
  const [message] = await drainQueue(storage.eventsQueue);
  return parseEnvelope(message);
}

/** The runs of one unit that overlap in time (each pair once). */
function overlapping(runs: Run[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [i, a] of runs.entries()) for (const b of runs.slice(i + 1)) if (a.start < b.end && b.start < a.end) pairs.push([a.by, b.by]);
  return pairs;
}

describe('instances whose clocks disagree', () => {
  let storage: StorageClients;
  beforeEach(async () => {
    storage = await isolatedStorage();
  });

  it('an instance whose clock runs ahead by more than the lease never runs a unit another holds, however often it looks', async () => {
    const leaseMs = 2_000;
    const runs: Run[] = [];
    const holder = instance('holder', storage, { runMs: 3 * leaseMs, leaseMs, runs });
    const ahead = instance('ahead', storage, { clockMs: 10 * leaseMs, runMs: 100, leaseMs, runs });
    const envelope = await oneEnvelope(storage);

    const held = holder(envelope);
    const copies: string[] = [];
    while (runs[0]?.end === undefined || Number.isNaN(runs[0].end)) {
      await sleep(300);
      copies.push((await ahead(envelope)).status);
    }
    expect((await held).status).toBe('processed');
    // Every copy it took while the unit was held came back later; the first after is a duplicate.
    expect(copies.length).toBeGreaterThanOrEqual(15);
    expect(new Set(copies.slice(0, -1))).toEqual(new Set(['deferred']));
    expect((await ahead(envelope)).status).toBe('duplicate');
    expect(runs.map((run) => [run.by, run.effect])).toEqual([['holder', true]]);
  }, 30_000);

  it('a dead holder whose clock ran an hour ahead holds its unit no longer than its lease (and the margin) on the service clock', async () => {
    const leaseMs = 2_000;
    const runs: Run[] = [];
    const behind = instance('next', storage, { clockMs: -60_000, runMs: 100, leaseMs, runs });
    const envelope = await oneEnvelope(storage);
    // Claimed by an instance whose clock is an hour ahead, which then dies.
    const ahead = new Ledger(storage.ledger, () => Date.now() + 3_600_000);
    const claimedAt = Date.now();
    expect((await ahead.claimUnit(deliveryKey(envelope.summary), 'slow', envelope.eventId, leaseMs)).kind).toBe('claimed');

    let outcome: ProcessOutcome['status'] = 'deferred';
    while (outcome === 'deferred' && Date.now() - claimedAt < 10_000) {
      await sleep(250);
      outcome = (await behind(envelope)).status;
    }
    expect(outcome).toBe('processed');
    const tookOverAfterMs = runs[0]!.start - claimedAt;
    expect(tookOverAfterMs).toBeGreaterThanOrEqual(leaseMs);
    // The lease, the margin, the second the service's Date is cut to, and a poll.
    expect(tookOverAfterMs).toBeLessThan(leaseMs + SERVICE_CLOCK_MARGIN_MS + 1_000 + 500);
  }, 30_000);
});

interface Step {
  kind: 'start' | 'stall' | 'effect' | 'aborted' | 'outcome';
  at: number;
  status?: string;
  error?: string;
}

/** The stalling processor (apps/stallingProcessor.cjs) in a process of its own, and what it said. */
function stallingProcessor(
  storage: StorageClients,
  message: unknown,
  plan: { leaseMs: number; beforeMs: number; stallMs: number; afterMs: number },
) {
  const steps: Step[] = [];
  let output = '';
  const child = spawn(process.execPath, [path.join(__dirname, 'apps', 'stallingProcessor.cjs')], {
    env: {
      ...process.env,
      STALL_PLAN: JSON.stringify({ connectionString: inject('azuriteConnectionString'), names: storage.names, message, ...plan }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    const lines = output.split('\n');
    output = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) steps.push(JSON.parse(line) as Step);
  });
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () =>
      steps.some((step) => step.kind === 'outcome') ? resolve() : reject(new Error(`the stalling processor ended early:\n${errors}`)),
    );
  });
  return { steps, exited, running: () => child.exitCode === null };
}

describe('a holder whose event loop stalls', () => {
  let storage: StorageClients;
  let message: unknown;
  beforeEach(async () => {
    storage = await isolatedStorage();
    await ingest(storage, fixture('06-').body);
    [message] = await drainQueue(storage.eventsQueue);
  });

  /** Another instance takes a copy of the message every 300 ms while the stalling one runs; its runs are counted. */
  async function copiesMeanwhile(stalling: ReturnType<typeof stallingProcessor>, leaseMs: number, runs: Run[]) {
    const other = instance('other', storage, { runMs: leaseMs * 1.25, leaseMs, runs });
    const copies: Array<Promise<ProcessOutcome>> = [];
    // From when the stalling one holds the unit (its handler started).
    while (stalling.running() && !stalling.steps.some((step) => step.kind === 'start')) await sleep(20);
    while (stalling.running()) {
      copies.push(other(parseEnvelope(message)));
      await sleep(300);
    }
    await stalling.exited;
    return Promise.all(copies);
  }

  it(`keeps its unit through a stall of a third of the lease just before a renewal was due (tolerated: half of it less a round trip)`, async () => {
    const leaseMs = 3_000;
    const runs: Run[] = [];
    const stalling = stallingProcessor(storage, message, {
      leaseMs,
      beforeMs: leaseMs / 3 - 100,
      stallMs: leaseMs / 3,
      afterMs: leaseMs / 2,
    });
    const copies = await copiesMeanwhile(stalling, leaseMs, runs);
    expect(stalling.steps.map((step) => step.kind)).toEqual(['start', 'stall', 'effect', 'outcome']);
    expect(stalling.steps.at(-1)).toMatchObject({ status: 'processed' });
    expect(new Set(copies.map((copy) => copy.status))).toEqual(new Set(['deferred']));
    expect(runs).toEqual([]);
  }, 30_000);

  it('stalled past its lease, finds its unit taken over: it writes nothing there, fails nothing, and no third copy runs beside the second', async () => {
    const leaseMs = 2_000;
    const runs: Run[] = [];
    // Stalled at once, for longer than the lease, its margin and the second the service's Date is cut to.
    const stallMs = leaseMs + SERVICE_CLOCK_MARGIN_MS + 2_500;
    const stalling = stallingProcessor(storage, message, { leaseMs, beforeMs: 0, stallMs, afterMs: 200 });
    const copies = await copiesMeanwhile(stalling, leaseMs, runs);
    // Keep looking while the second run may still be going.
    const later: ProcessOutcome[] = [];
    const other = instance('other', storage, { runMs: leaseMs * 1.25, leaseMs, runs });
    for (let i = 0; i < 8; i++) {
      await sleep(300);
      later.push(await other(parseEnvelope(message)));
    }

    // The stalled run was told to stop as soon as its process ran again, before any effect, and its
    // message was not failed (a copy went back on the queue instead).
    expect(stalling.steps.map((step) => step.kind)).toEqual(['start', 'stall', 'aborted', 'outcome']);
    expect(stalling.steps.at(-1)).toMatchObject({ status: 'deferred' });
    // One other run took the unit over, had its effect, and nothing ran beside it.
    expect(runs.map((run) => [run.by, run.effect])).toEqual([['other', true]]);
    expect([...copies, ...later].filter((copy) => copy.status === 'processed')).toHaveLength(1);
    expect(later.at(-1)!.status).toBe('duplicate');
    const stalled: Run = { by: 'stalled', start: stalling.steps[0]!.at, end: stalling.steps[2]!.at, effect: false };
    // The stalled run and the one that took over overlap: a stall past the lease cannot be cut short.
    expect(overlapping([stalled, ...runs])).toEqual([['stalled', 'other']]);
  }, 30_000);
});
