import type { TimerSchedule } from './timerSchedule';

/**
 * Runs one timer-triggered function on its schedule, by the rules of the host's timer extension
 * (Azure/azure-webjobs-sdk-extensions, src/WebJobs.Extensions/Extensions/Timers/Listener/TimerListener.cs):
 * - `StartAsync`: the status starts as Last = LastUpdated = DateTime's default, Next = the first
 *   occurrence; with `runOnStartup` the function runs at once (a startup invocation), else the
 *   timer waits for Next. (Past-due runs need the status the host keeps in storage between starts,
 *   which a local run does not have: none here.)
 * - `InvokeJobFunction`: one invocation at a time (its `_invocationLock`); a failure is logged and
 *   does not stop the schedule; afterwards Last = the time the invocation started (moved up to Next
 *   when the timer fired early), Next = the first occurrence after it.
 * - `StartTimer` / `GetNextTimerInterval`: the wait is counted from the end of the invocation, so an
 *   invocation that overran its next occurrence is followed at once, not twice; waits longer than
 *   24 days are taken in pieces (System.Timers.Timer's limit, like setTimeout's).
 * - The function receives TimerInfo as the host serializes it: `{"Schedule":{"AdjustForDST":true},
 *   "ScheduleStatus":{…}|null,"IsPastDue":false}`, ScheduleStatus only with `useMonitor`
 *   (TimerInfo.cs; @azure/functions camel-cases it into its `Timer`).
 */

/** .NET's DateTime.MinValue as Json.NET writes an unspecified-kind DateTime. */
const DEFAULT_DATE_TIME = '0001-01-01T00:00:00';
/** TimerListener.cs `_maxTimerInterval`: 24 days (setTimeout's own limit is 24.8). */
const MAX_TIMER_INTERVAL_MS = 24 * 24 * 60 * 60 * 1000;

export interface TimerStatus {
  Last: string;
  Next: string;
  LastUpdated: string;
}

export interface TimerInfoJson {
  Schedule: { AdjustForDST: boolean };
  ScheduleStatus: TimerStatus | null;
  IsPastDue: boolean;
}

export interface TimerListenerOptions {
  schedule: TimerSchedule;
  runOnStartup: boolean;
  useMonitor: boolean;
  /** Invokes the function; a rejection is reported and the schedule goes on. */
  run: (timerInfo: TimerInfoJson, reason: 'schedule' | 'startup') => Promise<void>;
  onError: (error: unknown) => void;
  /** How a Date is written in the status (the host: Json.NET's round-trip format). */
  formatDate: (date: Date) => string;
  now?: () => Date;
}

export class TimerListener {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private status: { last: Date | null; next: Date; lastUpdated: Date | null };
  private readonly now: () => Date;

  constructor(private readonly options: TimerListenerOptions) {
    this.now = options.now ?? (() => new Date());
    this.status = { last: null, next: options.schedule.next(this.now()), lastUpdated: null };
  }

  /** The next occurrence it waits for. */
  get next(): Date {
    return this.status.next;
  }

  start(): void {
    if (this.options.runOnStartup) this.wait(1, 'startup');
    else this.wait(this.status.next.getTime() - this.now().getTime(), 'schedule');
  }

  /** No new invocation; waits for the one running. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private wait(intervalMs: number, reason: 'schedule' | 'startup'): void {
    if (this.stopped) return;
    const interval = Math.max(1, intervalMs);
    if (interval > MAX_TIMER_INTERVAL_MS) {
      this.timer = setTimeout(() => this.wait(interval - MAX_TIMER_INTERVAL_MS, reason), MAX_TIMER_INTERVAL_MS);
      return;
    }
    this.timer = setTimeout(() => {
      this.running = this.fire(reason);
    }, interval);
  }

  private async fire(reason: 'schedule' | 'startup'): Promise<void> {
    if (this.stopped) return;
    const invokedAt = this.now();
    const { formatDate } = this.options;
    const status: TimerStatus = {
      Last: this.status.last ? formatDate(this.status.last) : DEFAULT_DATE_TIME,
      Next: formatDate(this.status.next),
      LastUpdated: this.status.lastUpdated ? formatDate(this.status.lastUpdated) : DEFAULT_DATE_TIME,
    };
    try {
      await this.options.run(
        { Schedule: { AdjustForDST: true }, ScheduleStatus: this.options.useMonitor ? status : null, IsPastDue: false },
        reason,
      );
    } catch (error) {
      this.options.onError(error);
    }
    const adjusted = reason === 'schedule' && this.status.next > invokedAt ? this.status.next : invokedAt;
    this.status = { last: adjusted, next: this.options.schedule.next(adjusted), lastUpdated: adjusted };
    this.wait(this.status.next.getTime() - this.now().getTime(), 'schedule');
  }
}
