import { describe, expect, it } from 'vitest';
import { type FaultPlan, runUnderFaults } from '../support/underFaults';

/**
 * Load under faults, end to end (see test/support/underFaults.ts). `npm test` runs a short plan;
 * `npm run soak` the full one: 1,500 events on three instances (UNDER_FAULTS_EVENTS, _INSTANCES).
 */
const events = Number(process.env.UNDER_FAULTS_EVENTS ?? 240);
const instances = Number(process.env.UNDER_FAULTS_INSTANCES ?? 2);
const scale = Math.max(1, events / 240);

const plan: FaultPlan = {
  events,
  ingestOverMs: 12_000 * scale,
  instances,
  claimCheckEvery: 25,
  outages: [
    { atMs: 1_500 * scale, forMs: 3_000, fault: 'reset' },
    { atMs: 6_000 * scale, forMs: 2_000, fault: 'hang' },
    { atMs: 9_000 * scale, forMs: 5_000, fault: 'reset' },
  ],
  crashesAtMs: [3_000 * scale, 8_000 * scale],
  throwOnce: 0.03,
  hangOnce: 0.02,
  crashAfterEffect: 0.005,
  postedTwice: 0.05,
};

describe('under load with storage outages, hangs, crashes, restarts and redeliveries', () => {
  it('no event answered 202 is lost, and none has its effect twice unless a crash fell between the effect and its done-mark', async () => {
    const report = await runUnderFaults(plan);
    if (process.env.UNDER_FAULTS_REPORT) process.stdout.write(`${JSON.stringify({ plan, report }, null, 2)}\n`);
    // The faults happened: some posts got 503, and instances crashed.
    expect(report.unavailable).toBeGreaterThan(0);
    expect(report.crashes).toBeGreaterThanOrEqual(plan.crashesAtMs.length);
    expect(report.accepted).toBeGreaterThan(events / 2);

    expect(report.lost).toEqual([]);
    expect(report.repeatedWithoutCrash).toEqual([]);
    expect(report.every503HadRetryAfter).toBe(true);
    // Every 503 came at the deadline at the latest (with room for a busy event loop), never a Dataverse timeout.
    expect(report.slowest503Ms).toBeLessThan(report.storageDeadlineMs + 2_000);
  }, 600_000);
});
