/**
 * DataContract JSON dates: `\/Date(1506384247000)\/` and `\/Date(1506409448000-0700)\/`.
 * After JSON.parse the escaped slashes are plain `/`; re-serialized captures never escaped them.
 * The grammar, as a regular expression: `^\/Date\((-?\d{1,15})(?:([+-])(\d{2})(\d{2}))?\)\/$`; it
 * is read character by character below (a regular expression's match allocates, and every date
 * of every record goes through here), and test/dataverse/dates.test.ts holds the two to each other.
 */
/** A cheap pre-check so the regex only runs on strings that can be dates. */
export function looksLikeDataContractDate(text: string): boolean {
  return text.length >= 9 && text.charCodeAt(0) === 47 /* / */ && text.startsWith('/Date(');
}

/**
 * Returns the instant a DataContract date stands for, or null when the text is not one.
 *
 * Without an offset the number is milliseconds since the Unix epoch, UTC.
 *
 * With an offset, Dataverse does not follow the WCF convention (UTC milliseconds plus an
 * informational zone). It serializes the UTC wall clock as if it were local time, so the
 * milliseconds are off by the offset and the real instant is `milliseconds + offset`.
 * Evidence: in the documented contact Update, `modifiedon` is `1506384247000` (00:04:07Z)
 * and `OperationCreatedOn`, written one second later, is `1506409448000-0700`: read naively
 * that is 07:04:08Z, seven hours after the change it records; with the offset added it is
 * 00:04:08Z. The captured `+0000` values (fixture 01) are the same either way.
 */
export function parseDataContractDate(text: string): Date | null {
  if (!looksLikeDataContractDate(text)) return null;
  const close = text.length - 2;
  if (text.charCodeAt(close) !== 41 /* ) */ || text.charCodeAt(close + 1) !== 47 /* / */) return null;
  let i = 6; // after '/Date('
  const negative = text.charCodeAt(i) === 45; /* - */
  if (negative) i++;
  const digitsStart = i;
  let milliseconds = 0;
  for (; i < close; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) break;
    milliseconds = milliseconds * 10 + (code - 48);
  }
  const digits = i - digitsStart;
  if (digits < 1 || digits > 15) return null;
  if (negative) milliseconds = -milliseconds;
  if (i !== close) {
    // An offset: a sign and exactly four digits, hhmm.
    const sign = text.charCodeAt(i);
    if (close - i !== 5 || (sign !== 43 /* + */ && sign !== 45) /* - */) return null;
    let hhmm = 0;
    for (let j = i + 1; j < close; j++) {
      const code = text.charCodeAt(j);
      if (code < 48 || code > 57) return null;
      hhmm = hhmm * 10 + (code - 48);
    }
    const offsetMinutes = Math.floor(hhmm / 100) * 60 + (hhmm % 100);
    milliseconds += (sign === 45 ? -1 : 1) * offsetMinutes * 60_000;
  }
  const date = new Date(milliseconds);
  return Number.isNaN(date.getTime()) ? null : date;
}
