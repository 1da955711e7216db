import { describe, expect, it } from 'vitest';
import { type TimerInfoJson, TimerListener } from '../timerListener';
import { parseSchedule } from '../timerSchedule';

/** Local time, as the host's NCRONTAB schedules are read. */
const at = (month: number, day: number, hour: number, minute: number, second = 0) => new Date(2026, month - 1, day, hour, minute, second);

describe('timer schedules, read as the host reads them', () => {
  it('NCRONTAB with seconds: values, ranges, steps, lists and names', () => {
    expect(parseSchedule('0 17 * * * *').next(at(12, 4, 18, 17, 0))).toEqual(at(12, 4, 19, 17, 0));
    expect(parseSchedule('*/15 * * * * *').next(at(12, 4, 18, 0, 14))).toEqual(at(12, 4, 18, 0, 15));
    expect(parseSchedule('0 30 9 * * 1-5').next(at(12, 4, 10, 0))).toEqual(at(12, 7, 9, 30)); // Friday after 9:30: Monday
    expect(parseSchedule('0 0 9 * * Mon,Wed').next(at(12, 4, 10, 0))).toEqual(at(12, 7, 9, 0));
    expect(parseSchedule('0 0 0 1 Jan *').next(at(12, 4, 10, 0))).toEqual(new Date(2027, 0, 1, 0, 0, 0));
    expect(parseSchedule('0 0 12 13 * 5').next(at(1, 1, 0, 0))).toEqual(at(2, 13, 12, 0)); // Friday the 13th: both fields must match
  });

  it('a timespan is a constant period; anything else is refused as the host refuses it', () => {
    expect(parseSchedule('00:05:00').next(at(12, 4, 18, 0))).toEqual(at(12, 4, 18, 5));
    expect(parseSchedule('1.00:00:00').next(at(12, 4, 18, 0))).toEqual(at(12, 5, 18, 0));
    expect(() => parseSchedule('*/5 * * * *')).toThrow(
      /not recognized as a valid cron expression \(six fields, with seconds\) or timespan/,
    );
    expect(() => parseSchedule('0 61 * * * *')).toThrow(/minute "61" is not from 0 to 59/);
    expect(() => parseSchedule('')).toThrow(/not recognized/);
  });
});

describe('the timer listener', () => {
  it('runs on the schedule one invocation at a time, goes on after a failure, and stops waiting for the one running', async () => {
    const seen: Array<{ info: TimerInfoJson; reason: string; at: number }> = [];
    let running = 0;
    let overlapped = false;
    const errors: unknown[] = [];
    const listener = new TimerListener({
      schedule: { description: 'every 50 ms', next: (after) => new Date(after.getTime() + 50) },
      runOnStartup: true,
      useMonitor: true,
      formatDate: (date) => date.toISOString(),
      onError: (error) => errors.push(error),
      run: async (info, reason) => {
        if (running++ > 0) overlapped = true;
        seen.push({ info, reason, at: Date.now() });
        // Longer than the period: the next run follows this one, never alongside it.
        await new Promise((resolve) => setTimeout(resolve, 80));
        running--;
        if (seen.length === 1) throw new Error('first fails');
      },
    });
    listener.start();
    while (seen.length < 3) await new Promise((resolve) => setTimeout(resolve, 10));
    await listener.stop();
    const count = seen.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(seen.length).toBe(count);
    expect(overlapped).toBe(false);
    expect(errors).toEqual([new Error('first fails')]);
    expect(seen.map((run) => run.reason).slice(0, 3)).toEqual(['startup', 'schedule', 'schedule']);
    expect(seen[0]!.info).toMatchObject({
      Schedule: { AdjustForDST: true },
      IsPastDue: false,
      ScheduleStatus: { Last: '0001-01-01T00:00:00', LastUpdated: '0001-01-01T00:00:00' },
    });
    expect(seen[1]!.info.ScheduleStatus!.Last).not.toBe('0001-01-01T00:00:00');
  });

  it('without useMonitor the function gets no schedule status', async () => {
    const seen: TimerInfoJson[] = [];
    const listener = new TimerListener({
      schedule: parseSchedule('00:00:01'),
      runOnStartup: true,
      useMonitor: false,
      formatDate: (date) => date.toISOString(),
      onError: () => undefined,
      run: async (info) => void seen.push(info),
    });
    listener.start();
    while (seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    await listener.stop();
    expect(seen[0]).toEqual({ Schedule: { AdjustForDST: true }, ScheduleStatus: null, IsPastDue: false });
  });
});
