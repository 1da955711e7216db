import { createDataverseClient, type DataverseClient } from './client';
import { createAzureTokenProvider } from './tokens';

let processClient: { url: string; client: DataverseClient } | undefined;

/**
 * The process-wide client of the organization, created on first use and reused by every function
 * of this worker, so that one credential and one token serve them all: the app's managed identity,
 * named by AZURE_CLIENT_ID, which DefaultAzureCredential reads.
 */
export function getDataverseClient(url: string): DataverseClient {
  if (processClient?.url !== url) processClient = { url, client: createDataverseClient(url, { tokens: createAzureTokenProvider() }) };
  return processClient.client;
}
