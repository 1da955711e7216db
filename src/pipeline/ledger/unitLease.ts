import type { HeldClaim, Ledger } from './ledger';

export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

export interface UnitLeaseOptions {
  onRenewalFailed?: (error: unknown) => void;
}

/**
 * Keeps a held unit's ledger lease from the claim until its done-mark lands, the way the queue
 * extension keeps a message's visibility while its function runs (QueueListener.cs
 * `CreateUpdateMessageVisibilityTimer`: renewed at half the lease, a failed renewal tried again
 * sooner) and as Service Bus locks are renewed by their holder. Here: renewed a third of the lease
 * after the last write of the holder that landed was sent (a renewal is a conditional Merge on the
 * row's ETag, one round trip); a renewal that fails is tried again a twelfth of the lease later.
 *
 * Others measure the lease on the Table service's clock, from the row's last write (ledger.ts); the
 * holder measures it on its own monotonic clock from when it sent that write, which is no later.
 * While the handler runs, when the lease could not be renewed by a sixth of it before it ends
 * (storage out, or someone else wrote the row), `signal` aborts and `lost` rejects: the handler is
 * told to stop and is no longer waited for, before anyone else could take the unit over. So a live
 * handler never runs beside a second copy of itself, and a dead one's unit is free again within a
 * lease (and the service's margin) of its last renewal.
 *
 * After the handler returns, the lease is renewed on until its done-mark lands (`stop`): the unit
 * stays this processor's while the done-mark is retried, a slow one included (a renewal never waits
 * for it: each is conditioned on the holder's last write, and the second to land reads back the first).
 *
 * A handler that finishes, and is marked done, within a third of the lease costs no renewal at all.
 */
export class UnitLease {
  readonly #controller = new AbortController();
  readonly #lost: Promise<never>;
  #fail!: (error: LeaseLostError) => void;
  readonly #onRenewalFailed: (error: unknown) => void;
  #renewTimer: NodeJS.Timeout | undefined;
  #guardTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #handlerRunning = true;
  #takenOver = false;

  constructor(
    readonly claim: HeldClaim,
    private readonly ledger: Ledger,
    options: UnitLeaseOptions = {},
  ) {
    this.#onRenewalFailed = options.onRenewalFailed ?? (() => undefined);
    this.#lost = new Promise<never>((_, reject) => (this.#fail = reject));
    // Nobody may be waiting when it is lost: not an unhandled rejection.
    this.#lost.catch(() => undefined);
    this.#guard();
    this.#scheduleRenewal();
  }

  /** Aborted when the lease could not be kept while the handler ran. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Rejects with a LeaseLostError when the lease could not be kept while the handler ran. */
  get lost(): Promise<never> {
    return this.#lost;
  }

  /** A renewal found the unit written by someone else: it is no longer this processor's to write. */
  get takenOver(): boolean {
    return this.#takenOver;
  }

  /** The handler returned: there is nothing left to stop, and the lease is renewed on until `stop`. */
  handlerReturned(): void {
    this.#handlerRunning = false;
    clearTimeout(this.#guardTimer);
  }

  /** No more renewals (a renewal under way may still land: it changes nothing but the lease). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#guardTimer);
  }

  /** When the handler must have been told to stop: a sixth of the lease before it ends, on the holder's clock. */
  #abortAt(): number {
    return this.claim.sentAt + (this.claim.leaseMs * 5) / 6;
  }

  #guard(): void {
    clearTimeout(this.#guardTimer);
    if (!this.#handlerRunning) return;
    this.#guardTimer = setTimeout(
      () => {
        // A renewal may have landed since this was set: it moved the lease on.
        if (this.ledger.monotonic() < this.#abortAt()) this.#guard();
        else this.#lose(`its ledger lease could not be renewed (it ends in ${Math.round(this.claim.leaseMs / 6)} ms)`);
      },
      Math.max(0, this.#abortAt() - this.ledger.monotonic()),
    );
  }

  #lose(why: string): void {
    if (this.#stopped) return;
    this.stop();
    if (!this.#handlerRunning) return;
    const error = new LeaseLostError(`stopped: ${why}, so that no other processor runs it at the same time`);
    this.#controller.abort(error);
    this.#fail(error);
  }

  #scheduleRenewal(delayMs = this.claim.sentAt + this.claim.leaseMs / 3 - this.ledger.monotonic()): void {
    if (this.#stopped) return;
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => void this.#renew(), Math.max(0, delayMs));
  }

  async #renew(): Promise<void> {
    try {
      const renewed = await this.ledger.renew(this.claim);
      if (this.#stopped) return;
      if (renewed === 'lost') {
        this.#takenOver = true;
        this.#lose('its ledger row was written by someone else');
        return;
      }
      this.#guard();
      this.#scheduleRenewal();
    } catch (error) {
      if (this.#stopped) return;
      this.#onRenewalFailed(error);
      this.#scheduleRenewal(Math.max(250, this.claim.leaseMs / 12));
    }
  }
}
