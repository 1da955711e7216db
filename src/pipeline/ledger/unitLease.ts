import type { HeldClaim, Ledger } from './ledger';

export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

/**
 * Keeps a held unit's ledger lease while its handler runs, the way the queue extension keeps a
 * message's visibility while its function runs (QueueListener.cs `CreateUpdateMessageVisibilityTimer`:
 * renewed at half the lease, a failed renewal tried again sooner) and as Service Bus locks are
 * renewed by their holder. Here: renewed every third of the lease (a renewal is a conditional
 * Merge on the row's ETag, one round trip); a renewal that fails is tried again a twelfth of the
 * lease later. When the lease could not be renewed by a sixth of it before it ends (storage out,
 * or someone else changed the row), `signal` aborts and `lost` rejects: the handler is told to
 * stop and is no longer waited for, and its unit fails, before the lease can lapse and another
 * processor take the unit over. So a live handler never runs beside a second copy of itself, and a
 * dead one's unit is free again within one lease of its last renewal.
 *
 * A handler that finishes within a third of the lease costs no renewal at all.
 */
export class UnitLease {
  readonly #controller = new AbortController();
  readonly #lost: Promise<never>;
  #fail!: (error: LeaseLostError) => void;
  #claim: HeldClaim;
  #renewTimer: NodeJS.Timeout | undefined;
  #guardTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #renewals = 0;

  constructor(
    claim: HeldClaim,
    private readonly ledger: Ledger,
    private readonly leaseMs: number,
    private readonly now: () => number = Date.now,
    private readonly onRenewalFailed: (error: unknown) => void = () => undefined,
  ) {
    this.#claim = claim;
    this.#lost = new Promise<never>((_, reject) => (this.#fail = reject));
    // Nobody may be waiting when it is lost: not an unhandled rejection.
    this.#lost.catch(() => undefined);
    this.#guard();
    this.#schedule(this.leaseMs / 3);
  }

  /** The claim as last renewed: its leaseUntil is how long the unit is ours for sure. */
  get claim(): HeldClaim {
    return this.#claim;
  }

  get renewals(): number {
    return this.#renewals;
  }

  /** Aborted when the lease could not be kept. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Rejects with a LeaseLostError when the lease could not be kept. */
  get lost(): Promise<never> {
    return this.#lost;
  }

  /** No more renewals (a renewal under way may still land; it changes nothing but leaseUntil). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#guardTimer);
  }

  #guard(): void {
    clearTimeout(this.#guardTimer);
    const abortAt = this.#claim.leaseUntil - this.leaseMs / 6;
    this.#guardTimer = setTimeout(
      () => this.#lose(`its ledger lease could not be renewed (it ends in ${Math.round(this.leaseMs / 6)} ms)`),
      Math.max(0, abortAt - this.now()),
    );
  }

  #lose(why: string): void {
    if (this.#stopped) return;
    this.stop();
    const error = new LeaseLostError(`stopped: ${why}, so that no other processor runs it at the same time`);
    this.#controller.abort(error);
    this.#fail(error);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#renewTimer = setTimeout(() => void this.#renew(), delayMs);
  }

  async #renew(): Promise<void> {
    try {
      const renewed = await this.ledger.renew(this.#claim, this.leaseMs);
      if (this.#stopped) return;
      if (!renewed) {
        this.#lose('its ledger row was changed by someone else');
        return;
      }
      this.#claim = renewed;
      this.#renewals++;
      this.#guard();
      this.#schedule(this.leaseMs / 3);
    } catch (error) {
      if (this.#stopped) return;
      this.onRenewalFailed(error);
      this.#schedule(Math.max(250, this.leaseMs / 12));
    }
  }
}
