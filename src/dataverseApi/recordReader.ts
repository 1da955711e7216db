import { z } from 'zod';
import type { DataverseClient } from './client';
import { identifier, queryString, rowPath, stringLiteral } from './odata';

/** A row as the Web API returns it: column values plus `@odata.*` annotations. */
export type DataverseRow = Record<string, unknown>;

export interface RecordReader {
  /**
   * Reads one row again, e.g. when a truncated event left its Target out. `columns` narrows the
   * read to those columns (fewer bytes, fewer privileges); without it every column comes back.
   * Throws an ApiError when Dataverse cannot answer (a 404 means the row is gone): the processor
   * retries it like any other handler failure.
   */
  retrieve(logicalName: string, id: string, columns?: readonly string[]): Promise<DataverseRow>;
}

const entityDefinition = z.object({ EntitySetName: z.string().min(1) });
const row = z.record(z.string(), z.unknown());

/**
 * Reads rows by table logical name. The entity set name (`account` → `accounts`, and no rule
 * derives it for every table) comes from the table's metadata, read once per table for the life
 * of the reader; a failed metadata read is not cached, so the next call tries again.
 */
export function createRecordReader(client: DataverseClient): RecordReader {
  const entitySetNames = new Map<string, Promise<string>>();

  const entitySetName = (logicalName: string): Promise<string> => {
    const key = logicalName.toLowerCase();
    let pending = entitySetNames.get(key);
    if (!pending) {
      pending = client
        .get(
          `EntityDefinitions(LogicalName=${stringLiteral(identifier(key))})${queryString({ select: ['EntitySetName'] })}`,
          entityDefinition,
        )
        .then((definition) => definition.EntitySetName);
      entitySetNames.set(key, pending);
      pending.catch(() => entitySetNames.delete(key));
    }
    return pending;
  };

  return {
    async retrieve(logicalName, id, columns) {
      const setName = await entitySetName(logicalName);
      const select = columns && columns.length > 0 ? queryString({ select: columns }) : '';
      return client.get(`${rowPath(setName, id)}${select}`, row);
    },
  };
}
