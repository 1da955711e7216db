import type { DataverseHeaders } from './model';

/** Anything that can look a header up: the Fetch `Headers` that @azure/functions gives, or a plain record. */
export type HeaderSource = { get(name: string): string | null } | Readonly<Record<string, string | string[] | undefined>>;

export const DATAVERSE_HEADER_NAMES = {
  organization: 'x-ms-dynamics-organization',
  entityName: 'x-ms-dynamics-entity-name',
  requestName: 'x-ms-dynamics-request-name',
  correlationRequestId: 'x-ms-correlation-request-id',
  requestId: 'x-request-id',
} as const satisfies Record<keyof DataverseHeaders, string>;

export const MSG_SIZE_EXCEEDED_HEADER = 'x-ms-dynamics-msg-size-exceeded';

/** Header names are case-insensitive: lookups on a plain record ignore case too. */
export function headerValue(source: HeaderSource, name: string): string | null {
  if (typeof source.get === 'function') return (source as { get(name: string): string | null }).get(name);
  const record = source as Readonly<Record<string, string | string[] | undefined>>;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(record)) {
    if (key.toLowerCase() !== wanted) continue;
    const value = record[key];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }
  return null;
}

export function readDataverseHeaders(source: HeaderSource): DataverseHeaders {
  return {
    organization: headerValue(source, DATAVERSE_HEADER_NAMES.organization),
    entityName: headerValue(source, DATAVERSE_HEADER_NAMES.entityName),
    requestName: headerValue(source, DATAVERSE_HEADER_NAMES.requestName),
    correlationRequestId: headerValue(source, DATAVERSE_HEADER_NAMES.correlationRequestId),
    requestId: headerValue(source, DATAVERSE_HEADER_NAMES.requestId),
  };
}

/** Dataverse sends the header only when it removed properties; its presence is what counts. */
export function isTruncated(source: HeaderSource): boolean {
  return headerValue(source, MSG_SIZE_EXCEEDED_HEADER) !== null;
}
