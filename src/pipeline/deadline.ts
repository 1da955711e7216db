export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
  constructor(readonly deadlineMs: number) {
    super(`Deadline of ${deadlineMs} ms exceeded`);
  }
}

/**
 * A point in time after which work is abandoned: its signal aborts what honours it (the storage
 * SDKs, fetch, a handler), and `bound` rejects at the deadline even if the work ignores the
 * signal, so a hung dependency becomes an answer (a 503, a failed unit) rather than a Dataverse
 * timeout or a worker the host restarts. One deadline can bound several steps.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly expired: Promise<never>;

  constructor(readonly ms: number) {
    this.expired = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => {
        const error = new DeadlineExceededError(ms);
        this.controller.abort(error);
        reject(error);
      }, ms);
    });
    // Nobody may be waiting when it fires; that is not an unhandled rejection.
    this.expired.catch(() => undefined);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  bound<T>(work: Promise<T>): Promise<T> {
    // Work abandoned at the deadline may still fail later, with nobody waiting: not an unhandled rejection.
    work.catch(() => undefined);
    return Promise.race([work, this.expired]);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
