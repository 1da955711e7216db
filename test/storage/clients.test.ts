import { ManagedIdentityCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { createStorageClients, StorageConfigurationError, storageConnectionFrom } from '../../src/storage/clients';
import { EVENTS_QUEUE, LEDGER_TABLE, PAYLOAD_CONTAINER } from '../../src/storage/names';

describe('the storage connection, read as the Functions host reads AzureWebJobsStorage', () => {
  it('a connection string wins', () => {
    expect(storageConnectionFrom({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsStorage__accountName: 'x' })).toEqual({
      kind: 'connection-string',
      connectionString: 'UseDevelopmentStorage=true',
    });
  });

  it('an account name means identity-based, on the public endpoints, with the user-assigned identity named', () => {
    const connection = storageConnectionFrom({
      AzureWebJobsStorage__accountName: 'stdataversehooks',
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: '11111111-2222-3333-4444-555555555555',
    });
    expect(connection).toMatchObject({
      kind: 'identity',
      blobUrl: 'https://stdataversehooks.blob.core.windows.net',
      queueUrl: 'https://stdataversehooks.queue.core.windows.net',
      tableUrl: 'https://stdataversehooks.table.core.windows.net',
    });
    expect(connection.kind === 'identity' && connection.credential).toBeInstanceOf(ManagedIdentityCredential);
    const clients = createStorageClients(connection);
    expect(clients.eventsQueue.url).toBe(`https://stdataversehooks.queue.core.windows.net/${EVENTS_QUEUE}`);
    expect(clients.payloads.url).toBe(`https://stdataversehooks.blob.core.windows.net/${PAYLOAD_CONTAINER}`);
    expect(clients.ledger.url).toBe('https://stdataversehooks.table.core.windows.net');
    expect(clients.ledger.tableName).toBe(LEDGER_TABLE);
  });

  it('service URIs (sovereign clouds, private endpoints) are taken as given', () => {
    const connection = storageConnectionFrom({
      AzureWebJobsStorage__blobServiceUri: 'https://acct.blob.core.chinacloudapi.cn',
      AzureWebJobsStorage__queueServiceUri: 'https://acct.queue.core.chinacloudapi.cn',
      AzureWebJobsStorage__tableServiceUri: 'https://acct.table.core.chinacloudapi.cn',
    });
    expect(connection).toMatchObject({ kind: 'identity', queueUrl: 'https://acct.queue.core.chinacloudapi.cn' });
  });

  it('nothing set is a configuration error that says what to set', () => {
    expect(() => storageConnectionFrom({})).toThrow(StorageConfigurationError);
    expect(() => storageConnectionFrom({})).toThrow(/AzureWebJobsStorage__accountName/);
  });
});
