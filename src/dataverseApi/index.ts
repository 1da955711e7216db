export {
  createDataverseClient,
  type DataverseClient,
  dataverseScope,
  OrganizationUrlError,
  parseOrganizationUrl,
  WEB_API_VERSION,
} from './client';
export { ApiError, type FetchFunction, type HttpOptions } from './http';
export { getDataverseClient } from './processClient';
export { createRecordReader, type DataverseRow, type RecordReader } from './recordReader';
export { createAzureTokenProvider, TokenError, type TokenProvider } from './tokens';
