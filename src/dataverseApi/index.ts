export { createDataverseClient, dataverseScope, parseOrganizationUrl, OrganizationUrlError, WEB_API_VERSION, type DataverseClient } from './client';
export { ApiError, type FetchFunction, type HttpOptions } from './http';
export { createRecordReader, type DataverseRow, type RecordReader } from './recordReader';
export { createAzureTokenProvider, TokenError, type TokenProvider } from './tokens';
