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

  it.each(['2017-09-26T00:04:07Z', '/Date()/', '/Date(abc)/', '/Date(1506384247000)', 'Date(1506384247000)/', '/Date(1506384247000+07)/', '/Date(9999999999999999)/'])(
    'returns null for %s',
    (text) => {
      expect(parseDataContractDate(text)).toBeNull();
    },
  );
});
