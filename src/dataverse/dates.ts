/**
 * DataContract JSON dates: `\/Date(1506384247000)\/` and `\/Date(1506409448000-0700)\/`.
 * After JSON.parse the escaped slashes are plain `/`; re-serialized captures never escaped them.
 */
const DATA_CONTRACT_DATE = /^\/Date\((-?\d{1,15})(?:([+-])(\d{2})(\d{2}))?\)\/$/;

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
  const match = DATA_CONTRACT_DATE.exec(text);
  if (!match) return null;
  let milliseconds = Number(match[1]);
  if (match[2] !== undefined) {
    const offsetMinutes = Number(match[3]) * 60 + Number(match[4]);
    milliseconds += (match[2] === '-' ? -1 : 1) * offsetMinutes * 60_000;
  }
  const date = new Date(milliseconds);
  return Number.isNaN(date.getTime()) ? null : date;
}
