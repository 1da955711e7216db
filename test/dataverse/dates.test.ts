import { describe, expect, it } from 'vitest';
import { parseDataContractDate } from '../../src/dataverse/dates';

describe('parseDataContractDate', () => {
  it('reads milliseconds since the epoch as UTC', () => {
    expect(parseDataContractDate('/Date(1506384247000)/')?.toISOString()).toBe('2017-09-26T00:04:07.000Z');
  });

  it('adds the offset, as Dataverse writes a UTC wall clock as local time', () => {
    // The docs sample: OperationCreatedOn is one second after the record's modifiedon (00:04:07Z).
    expect(parseDataContractDate('/Date(1506409448000-0700)/')?.toISOString()).toBe('2017-09-26T00:04:08.000Z');
    expect(parseDataContractDate('/Date(1506384248000+0130)/')?.toISOString()).toBe('2017-09-26T01:34:08.000Z');
  });

  it('leaves a zero offset as it is (fixture 01)', () => {
    expect(parseDataContractDate('/Date(1722582039000+0000)/')?.toISOString()).toBe('2024-08-02T07:00:39.000Z');
  });

  it('accepts dates before 1970', () => {
    expect(parseDataContractDate('/Date(-86400000)/')?.toISOString()).toBe('1969-12-31T00:00:00.000Z');
  });

  it.each([
    '2017-09-26T00:04:07Z',
    '/Date()/',
    '/Date(abc)/',
    '/Date(1506384247000)',
    'Date(1506384247000)/',
    '/Date(1506384247000+07)/',
    '/Date(9999999999999999)/',
  ])('returns null for %s', (text) => {
    expect(parseDataContractDate(text)).toBeNull();
  });

  it('reads exactly what the grammar’s regular expression reads, the same way (its reader is hand-written)', () => {
    const grammar = /^\/Date\((-?\d{1,15})(?:([+-])(\d{2})(\d{2}))?\)\/$/;
    const byGrammar = (text: string): number | null => {
      const match = grammar.exec(text);
      if (!match) return null;
      let milliseconds = Number(match[1]);
      if (match[2] !== undefined) milliseconds += (match[2] === '-' ? -1 : 1) * (Number(match[3]) * 60 + Number(match[4])) * 60_000;
      const time = new Date(milliseconds).getTime();
      return Number.isNaN(time) ? null : time;
    };
    const pieces = [
      '/Date(',
      '-',
      '+',
      '0',
      '7',
      '9',
      '12',
      '1506384247000',
      '999999999999999',
      '9999999999999999',
      ')',
      '/',
      ')/',
      'x',
      ' ',
      '0700',
      '1',
      '-07',
      '+0130',
      '\u0660',
    ];
    let seed = 20;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const texts = [
      '/Date(-0)/',
      '/Date(8640000000000000)/',
      '/Date(8640000000000001)/',
      '/Date(1-0700)/',
      '/Date(1+07000)/',
      '/Date(1+070)/',
    ];
    for (let n = 0; n < 5_000; n++) {
      let text = '/Date(';
      const parts = 1 + Math.floor(random() * 4);
      for (let p = 0; p < parts; p++) text += pieces[Math.floor(random() * pieces.length)];
      texts.push(random() < 0.7 ? `${text})/` : text);
    }
    let dates = 0;
    for (const text of texts) {
      const expected = byGrammar(text);
      expect([text, parseDataContractDate(text)?.getTime() ?? null]).toEqual([text, expected]);
      if (expected !== null) dates++;
    }
    expect(dates).toBeGreaterThan(500);
  });
});
