import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  BEFORE_HANDLERS,
  DIED_ERROR,
  deadRetrySpreadMs,
  type HeldClaim,
  Ledger,
  SERVICE_CLOCK_MARGIN_MS,
} from '../../../src/pipeline/ledger/ledger';
import type { StorageClients } from '../../../src/storage/clients';
import { isolatedStorage } from '../../support/storage';

/**
 * The effects-once ledger's protocol (src/pipeline/ledger/ledger.ts) on its own, against Azurite:
 * claims, attempts, settlements, decisions and watermarks, each rule as a processor meets it. The
 * processing that drives it: test/pipeline/{process,leases,reliability}.test.ts.
 */

const KEY = 'a'.repeat(64);
const LEASE_MS = 2_000;

/**
 * Until a lease of `leaseMs` is over on the service's clock, as others see it: the lease, the
 * margin, and a second more (the answer's Date is cut to the second).
 */
const leaseOver = (leaseMs: number) => sleep(leaseMs + SERVICE_CLOCK_MARGIN_MS + 1_000);

function held(claim: Awaited<ReturnType<Ledger['claimUnit']>>): HeldClaim {
  if (claim.kind !== 'claimed') throw new Error(`expected a claim, got ${JSON.stringify(claim)}`);
  return claim;
}

describe('the ledger', () => {
  let storage: StorageClients;
  let ledger: Ledger;
  beforeEach(async () => {
    storage = await isolatedStorage();
    ledger = new Ledger(storage.ledger);
  });

  it('in an empty account (no table yet) finds nothing, and its first write creates the table', async () => {
    expect(await ledger.eventSettlement(KEY)).toBeNull();
    expect(await ledger.failures(KEY)).toEqual([]);
    expect(await ledger.isStale({ table: 'contact', id: 'X' }, 'h', { kind: 'versionnumber', value: 1n })).toBe(false);
    expect((await ledger.claim(KEY, 'h', 'e1', LEASE_MS)).kind).toBe('claimed');
  });

  it('gives a unit to one claimant of many at once; the others find it busy until its lease ends', async () => {
    const claims = await Promise.all(Array.from({ length: 5 }, (_, i) => ledger.claim(KEY, 'h', `e${i}`, LEASE_MS)));
    expect(claims.filter((claim) => claim.kind === 'claimed')).toHaveLength(1);
    const busy = claims.filter((claim) => claim.kind === 'busy');
    expect(busy).toHaveLength(4);
    for (const claim of busy) {
      expect(claim.retryAfterMs).toBeGreaterThan(0);
      expect(claim.retryAfterMs).toBeLessThanOrEqual(LEASE_MS + SERVICE_CLOCK_MARGIN_MS);
    }
  });

  it('a unit done (or stale) is found done by every later claim, with what an inline handler decided', async () => {
    const claim = held(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS));
    await ledger.complete({ claim, state: 'done', eventId: 'e1' });
    expect(await ledger.claim(KEY, 'h', 'e2', LEASE_MS)).toEqual({ kind: 'already-done', state: 'done' });

    const stale = held(await ledger.claimUnit(KEY, 'old', 'e1', LEASE_MS));
    await ledger.complete({ claim: stale, state: 'stale', eventId: 'e1' });
    expect(await ledger.claim(KEY, 'old', 'e2', LEASE_MS)).toEqual({ kind: 'already-done', state: 'stale' });

    await ledger.recordDecision(KEY, 'inline', 'e1', 2, { outcome: 'reject', reason: 'no', code: 'E1' });
    expect(await ledger.claim(KEY, 'inline', 'e2', LEASE_MS)).toEqual({
      kind: 'already-done',
      state: 'done',
      decision: { outcome: 'reject', reason: 'no', code: 'E1' },
    });
  });

  it('a failed unit is taken over at once by the next claim, which counts the attempt; at maxAttempts it is exhausted', async () => {
    const first = held(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS, { maxAttempts: 2 }));
    expect(first.attempts).toBe(1);
    await ledger.fail(first, 'e1', 'Error: one');
    const second = held(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS, { maxAttempts: 2 }));
    expect(second.attempts).toBe(2);
    await ledger.fail(second, 'e1', 'Error: two');
    expect(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS, { maxAttempts: 2 })).toEqual({
      kind: 'exhausted',
      attempts: 2,
      error: 'Error: two',
    });
    expect(await ledger.failures(KEY)).toEqual([{ unit: 'h', attempts: 2, error: 'Error: two' }]);

    // A replay gives the unit its attempts again.
    const replayed = held(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS, { maxAttempts: 2, replays: 1 }));
    expect(replayed).toMatchObject({ attempts: 1, replays: 1 });
  });

  it('a unit whose lease ran out while processing is a dead run: recorded failed, and taken over after a random wait', async () => {
    const leaseMs = 300;
    held(await ledger.claimUnit(KEY, 'h', 'e1', leaseMs));
    // Within the lease and its margin, on the service's clock, the unit is busy.
    expect(await ledger.claimUnit(KEY, 'h', 'e2', leaseMs, { deadJitterMs: 2_000 })).toMatchObject({ kind: 'busy' });
    await leaseOver(leaseMs);
    const found = await ledger.claimUnit(KEY, 'h', 'e2', leaseMs, { deadJitterMs: 2_000, random: () => 0.5 });
    expect(found).toEqual({ kind: 'busy', retryAfterMs: 1_000, jittered: true });
    expect(await ledger.failures(KEY)).toEqual([{ unit: 'h', attempts: 1, error: DIED_ERROR }]);
    // Before its retry time nobody takes it over (a second more: the service's Date is cut to the
    // second); after it, the next claim is the second attempt.
    const early = await ledger.claimUnit(KEY, 'h', 'e2', leaseMs, { deadJitterMs: 2_000 });
    expect(early).toMatchObject({ kind: 'busy', jittered: true });
    expect(early.kind === 'busy' && early.retryAfterMs).toBeLessThanOrEqual(1_000);
    await sleep(2_000);
    expect(held(await ledger.claimUnit(KEY, 'h', 'e2', leaseMs, { deadJitterMs: 2_000 })).attempts).toBe(2);
  });

  it('a unit that dies again waits a spread twice as wide: the events beside a pill come apart ever further', async () => {
    const leaseMs = 300;
    const deadAgain = async () => {
      held(await ledger.claimUnit(KEY, 'h', 'e1', leaseMs, { deadJitterMs: 1_000 }));
      await leaseOver(leaseMs);
      const found = await ledger.claimUnit(KEY, 'h', 'e1', leaseMs, { deadJitterMs: 1_000, random: () => 0.99 });
      expect(found).toMatchObject({ kind: 'busy', jittered: true });
      return found.kind === 'busy' ? found.retryAfterMs : 0;
    };
    const first = await deadAgain();
    await sleep(first + 1_100);
    const second = await deadAgain();
    expect(first).toBe(990);
    expect(second).toBe(1_980);
    expect([1, 2, 3, 4, 5, 9].map((spent) => deadRetrySpreadMs(1_000, spent))).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it('a dead run on the last attempt leaves the unit exhausted, with the death as its error', async () => {
    const leaseMs = 300;
    held(await ledger.claimUnit(KEY, 'h', 'e1', leaseMs, { maxAttempts: 1 }));
    await leaseOver(leaseMs);
    expect(await ledger.claimUnit(KEY, 'h', 'e1', leaseMs, { maxAttempts: 1, deadJitterMs: 400 })).toEqual({
      kind: 'exhausted',
      attempts: 1,
      error: DIED_ERROR,
    });
  });

  it('a unit claimed by the version before this one (its lease as `leaseUntil` on its own clock) is held for that lease, then taken over', async () => {
    const leaseMs = 1_500;
    const at = Date.now();
    // What that version wrote: no token, no leaseMs; `leaseUntil` and `updatedAt` from one clock.
    await storage.ledger.createTable();
    await storage.ledger.createEntity({
      partitionKey: KEY,
      rowKey: 'h',
      state: 'processing',
      eventId: 'e1',
      attempts: 1,
      leaseUntil: at + leaseMs,
      updatedAt: new Date(at).toISOString(),
    });
    const busy = await ledger.claim(KEY, 'h', 'e2', 300);
    expect(busy.kind === 'busy' && busy.retryAfterMs).toBeGreaterThan(leaseMs);
    await leaseOver(leaseMs);
    expect(held(await ledger.claimUnit(KEY, 'h', 'e2', 300)).attempts).toBe(2);
  });

  it('renewing a held lease keeps the unit busy for others; once another claimant took it over, its holder writes nothing', async () => {
    const leaseMs = 300;
    const claim = held(await ledger.claimUnit(KEY, 'h', 'e1', leaseMs));
    const etag = claim.etag;
    expect(await ledger.renew(claim)).toBe('written');
    expect(claim).toMatchObject({ seq: 1 });
    expect(claim.etag).not.toBe(etag);
    expect((await ledger.claim(KEY, 'h', 'e2', leaseMs)).kind).toBe('busy');

    await leaseOver(leaseMs);
    const next = held(await ledger.claimUnit(KEY, 'h', 'e2', leaseMs));
    expect(next.attempts).toBe(2);
    // The first holder's writes now find another's token: each is refused, and writes nothing.
    expect(await ledger.renew(claim)).toBe('lost');
    expect(await ledger.fail(claim, 'e1', 'Error: late')).toBe('lost');
    expect(await ledger.complete({ claim, state: 'done', eventId: 'e1' })).toBe('lost');
    expect(await ledger.settleEvent(KEY, 'e1', 'processed', { claim, state: 'done', eventId: 'e1' })).toBe('lost');
    expect(await ledger.eventSettlement(KEY)).toBeNull();
    expect(await ledger.claim(KEY, 'h', 'e3', leaseMs)).toMatchObject({ kind: 'busy' });
    // The new holder's are its own.
    expect(await ledger.complete({ claim: next, state: 'done', eventId: 'e2' })).toBe('written');
    expect(await ledger.claim(KEY, 'h', 'e3', leaseMs)).toMatchObject({ kind: 'already-done' });
  });

  it('settles an event: alone, or in one transaction with its last unit; a copy reads the settlement', async () => {
    await ledger.settleEvent(KEY, 'e1', 'unhandled');
    expect(await ledger.eventSettlement(KEY)).toBe('unhandled');

    const other = 'b'.repeat(64);
    const claim = held(await ledger.claimUnit(other, 'h', 'e1', LEASE_MS));
    await ledger.settleEvent(other, 'e1', 'processed', { claim, state: 'done', eventId: 'e1' }, { claimCheck: true });
    expect(await ledger.eventSettlement(other)).toBe('processed');
    expect((await ledger.claim(other, 'h', 'e2', LEASE_MS)).kind).toBe('already-done');

    // An inline event: the done-mark alone, no `$event` row.
    const inline = 'c'.repeat(64);
    const unit = held(await ledger.claimUnit(inline, 'h', 'e1', LEASE_MS));
    await ledger.settleEvent(inline, 'e1', 'processed', { claim: unit, state: 'done', eventId: 'e1' }, { claimCheck: false });
    expect(await ledger.eventSettlement(inline)).toBeNull();
    expect((await ledger.claim(inline, 'h', 'e2', LEASE_MS)).kind).toBe('already-done');
  });

  it("lists an event's failures: its failed units, and why it failed before any handler ran", async () => {
    await ledger.failEvent(KEY, 'e1', 3, 'SettingsError: bad');
    const claim = held(await ledger.claimUnit(KEY, 'h', 'e1', LEASE_MS));
    await ledger.fail(claim, 'e1', 'Error: down');
    const done = held(await ledger.claimUnit(KEY, 'ok', 'e1', LEASE_MS));
    await ledger.settleEvent(KEY, 'e1', 'processed', { claim: done, state: 'done', eventId: 'e1' });
    expect((await ledger.failures(KEY)).sort((a, b) => a.unit.localeCompare(b.unit))).toEqual([
      { unit: BEFORE_HANDLERS, attempts: 3, error: 'SettingsError: bad' },
      { unit: 'h', attempts: 1, error: 'Error: down' },
    ]);
  });

  it('moves a watermark forward only, whatever the order and concurrency of the versions applied', async () => {
    const record = { table: 'contact', id: 'ABC' };
    const version = (value: number) => ({ kind: 'versionnumber' as const, value: BigInt(value) });
    await Promise.all([5, 9, 7, 3].map((value) => ledger.advanceWatermark(record, 'h', version(value), `e${value}`)));
    expect(await ledger.isStale(record, 'h', version(8))).toBe(true);
    expect(await ledger.isStale(record, 'h', version(9))).toBe(false);
    expect(await ledger.isStale({ ...record, id: 'abc' }, 'h', version(8))).toBe(true);
    expect(await ledger.isStale(record, 'other', version(1))).toBe(false);
    // Another kind of version says nothing about this one.
    expect(await ledger.isStale(record, 'h', { kind: 'modifiedon', value: 1n })).toBe(false);
  });
});
