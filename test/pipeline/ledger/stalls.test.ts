import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import { parseEnvelope } from '../../../src/pipeline/envelope';
import { SERVICE_CLOCK_MARGIN_MS } from '../../../src/pipeline/ledger/ledger';
import type { ProcessOutcome } from '../../../src/pipeline/process';
import type { StorageClients } from '../../../src/storage/clients';
import { fixture } from '../../support/fixtures';
import { instance, overlapping, type Run } from '../../support/instances';
import { ingest } from '../../support/processing';
import { drainQueue, isolatedStorage } from '../../support/storage';

/**
 * Stalls (issue 26, 3). A holder whose event loop stalls keeps its unit while the stall is shorter
 * than the tolerated one (docs/reliability.md, Clocks and stalls); once its unit was taken over
 * meanwhile, it writes nothing more there and does not fail its message. The stalling processor is
 * the built app in a process of its own (apps/stallingProcessor.cjs), its handler a busy loop: a
 * real stall, which none of that process's timers can interrupt; the other instance is this one.
 */

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

  it('keeps its unit through a stall that holds a renewal up by a third of the lease (tolerated: half of it less a round trip)', async () => {
    const leaseMs = 4_500;
    const runs: Run[] = [];
    // The renewal is due a third of the lease after the claim was sent; the stall starts 300 ms
    // before that (the handler starts a little after the claim) and ends a third of the lease after.
    const stalling = stallingProcessor(storage, message, {
      leaseMs,
      beforeMs: leaseMs / 3 - 300,
      stallMs: leaseMs / 3 + 300,
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
    // Keep looking while the second run goes on, and once after it.
    const later: ProcessOutcome[] = [];
    const other = instance('other', storage, { runMs: leaseMs * 1.25, leaseMs, runs });
    do {
      await sleep(300);
      later.push(await other(parseEnvelope(message)));
    } while (later.at(-1)!.status !== 'duplicate' && later.length < 20);

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
