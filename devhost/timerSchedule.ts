/**
 * A timer trigger's schedule, read as the Functions host's timer extension reads it
 * (Azure/azure-webjobs-sdk-extensions, src/WebJobs.Extensions/Extensions/Timers):
 * - TimerSchedule.cs `Create`: `%NAME%` is replaced by the app setting (ResolveWholeString, done by
 *   the caller); then the expression is an NCRONTAB expression *with seconds*
 *   (CronSchedule.cs `TryCreate`: `IncludingSeconds = true`, so exactly six fields: second minute
 *   hour day month day-of-week), else a TimeSpan (`hh:mm:ss`, `d.hh:mm:ss`: ConstantSchedule, one
 *   period after the last occurrence), else the function does not start ("The schedule expression
 *   was not recognized as a valid cron expression or timespan string.").
 * - NCrontab fields: `*`, a value, `a-b`, `*∕n` and `a-b/n` steps, comma lists; months may be named
 *   (Jan…Dec), days of the week too (Sun…Sat, Sunday = 0); a day must match both the day-of-month
 *   and the day-of-week fields (NCrontab's GetNextOccurrence checks one after the other).
 * - Times are the host's local time (TimerListener.cs uses DateTimeOffset.Now; in Azure UTC unless
 *   WEBSITE_TIME_ZONE says otherwise); here, the local time of the process.
 */

export interface TimerSchedule {
  /** The first occurrence strictly after `after`. */
  next(after: Date): Date;
  readonly description: string;
}

export class TimerScheduleError extends Error {
  override readonly name = 'TimerScheduleError';
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** The value of the first name (months count from 1). */
  nameBase?: number;
}

const FIELDS: FieldSpec[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { name: 'day of week', min: 0, max: 6, names: DAYS, nameBase: 0 },
];

function value(text: string, spec: FieldSpec): number {
  const named = spec.names?.indexOf(text.toLowerCase().slice(0, 3)) ?? -1;
  const parsed = named >= 0 && /^[a-z]+$/i.test(text) ? named + (spec.nameBase ?? 0) : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(parsed) || parsed < spec.min || parsed > spec.max)
    throw new TimerScheduleError(`${spec.name} "${text}" is not from ${spec.min} to ${spec.max}`);
  return parsed;
}

function parseField(text: string, spec: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!range || !Number.isInteger(step) || step < 1 || part.split('/').length > 2)
      throw new TimerScheduleError(`${spec.name} "${part}" is not a cron field`);
    let [from, to] = [spec.min, spec.max];
    if (range !== '*') {
      const bounds = range.split('-');
      if (bounds.length > 2) throw new TimerScheduleError(`${spec.name} "${part}" is not a cron field`);
      from = value(bounds[0]!, spec);
      to = bounds.length === 2 ? value(bounds[1]!, spec) : stepText === undefined ? from : spec.max;
      if (to < from) throw new TimerScheduleError(`${spec.name} "${part}" runs backwards`);
    }
    for (let current = from; current <= to; current += step) values.add(current);
  }
  return values;
}

function cronSchedule(expression: string, fields: string[]): TimerSchedule {
  const [seconds, minutes, hours, days, months, weekdays] = fields.map((field, index) => parseField(field, FIELDS[index]!)) as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return {
    description: `Cron: '${expression}'`,
    next(after: Date): Date {
      const at = new Date(after.getTime());
      at.setMilliseconds(0);
      at.setSeconds(at.getSeconds() + 1);
      // Field by field, from the largest: each miss moves to the start of the next unit.
      const limit = after.getTime() + 5 * 366 * 24 * 60 * 60 * 1000;
      while (at.getTime() <= limit) {
        if (!months.has(at.getMonth() + 1)) {
          at.setMonth(at.getMonth() + 1, 1);
          at.setHours(0, 0, 0);
        } else if (!days.has(at.getDate()) || !weekdays.has(at.getDay())) {
          at.setDate(at.getDate() + 1);
          at.setHours(0, 0, 0);
        } else if (!hours.has(at.getHours())) {
          at.setHours(at.getHours() + 1, 0, 0);
        } else if (!minutes.has(at.getMinutes())) {
          at.setMinutes(at.getMinutes() + 1, 0);
        } else if (!seconds.has(at.getSeconds())) {
          at.setSeconds(at.getSeconds() + 1);
        } else {
          return at;
        }
      }
      throw new TimerScheduleError(`the schedule '${expression}' has no occurrence in the next five years`);
    },
  };
}

/** .NET's TimeSpan.TryParse forms a schedule uses: `hh:mm`, `hh:mm:ss`, `d.hh:mm:ss`. */
const TIMESPAN = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?$/;

export function parseSchedule(expression: string): TimerSchedule {
  const text = expression.trim();
  const fields = text.split(/\s+/);
  if (fields.length === 6) return cronSchedule(text, fields);
  const span = TIMESPAN.exec(text);
  if (span) {
    const [days, hours, minutes, seconds] = [span[1], span[2], span[3], span[4]].map((part) => Number(part ?? 0)) as [
      number,
      number,
      number,
      number,
    ];
    if (hours > 23 || minutes > 59 || seconds > 59) throw new TimerScheduleError(`the schedule '${expression}' is not a valid timespan`);
    const periodMs = (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000;
    if (periodMs <= 0) throw new TimerScheduleError(`the schedule '${expression}' is a zero period`);
    return { description: `Constant: ${text}`, next: (after) => new Date(after.getTime() + periodMs) };
  }
  throw new TimerScheduleError(
    `The schedule expression '${expression}' was not recognized as a valid cron expression (six fields, with seconds) or timespan string.`,
  );
}
