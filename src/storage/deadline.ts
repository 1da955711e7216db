export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
  constructor(readonly deadlineMs: number) {
    super(`Deadline of ${deadlineMs} ms exceeded`);
  }
}

/**
 * A point in time after which storage work is abandoned: its signal aborts the SDK calls, and
 * `bound` rejects at the deadline even if a call ignores the signal, so a hung dependency becomes
 * an answer rather than a Dataverse timeout. One deadline can bound several steps.
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
    return Promise.race([work, this.expired]);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
