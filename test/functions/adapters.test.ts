import { beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { OTHER_METHODS, receiveDataverseWebhook, refuseOtherMethods } from '../../src/functions/dataverseWebhook';
import { processDataverseEvent } from '../../src/functions/processDataverseEvent';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';
import { rawEntity, rawExecutionContext, rawMoney } from '../../src/dataverse/samplePayloads';
import { DEFAULT_CREDIT_LIMIT_MAX } from '../../src/handlers/creditLimit';
import { fixture } from '../support/fixtures';
import { dataverseHeaders, invocationContext, webhookRequest } from '../support/requests';
import { drainQueue } from '../support/storage';

/**
 * The thin adapters as the host calls them: a real HttpRequest and InvocationContext, the
 * process-wide clients on AzureWebJobsStorage with the app's real names. This is the only test
 * file that uses the default names on the shared Azurite.
 */
describe('the function adapters', () => {
  let storage: StorageClients;
  beforeAll(async () => {
    process.env.AzureWebJobsStorage = inject('azuriteConnectionString');
    storage = createStorageClients(process.env.AzureWebJobsStorage);
  });

  it('the HTTP function answers 202 and the queue function rebuilds the event from what it wrote', async () => {
    const http = invocationContext('dataverseWebhook');
    const response = await receiveDataverseWebhook(webhookRequest(fixture('01-').body), http.context);
    expect(response.status).toBe(202);
    const eventId = (response.jsonBody as { eventId: string }).eventId;
    expect(http.text()).toContain(`eventId=${eventId}`);

    const messages = await drainQueue(storage.eventsQueue);
    expect(messages).toHaveLength(1);
    const queue = invocationContext('processDataverseEvent');
    await processDataverseEvent(messages[0], queue.context);
    expect(queue.text()).toContain(`eventId=${eventId}`);
    expect(queue.text()).toContain('table=msdyn_agentstatus');
  });

  it('every other method gets 405 with Allow: POST from the anonymous function, and nothing is stored', async () => {
    for (const method of OTHER_METHODS) {
      const response = await refuseOtherMethods(webhookRequest(method === 'GET' || method === 'HEAD' ? '' : fixture('01-').body, { method, query: '' }), invocationContext().context);
      expect(response, method).toMatchObject({ status: 405, headers: { Allow: 'POST' } });
      // A HEAD answer has no body; the others say why.
      if (method === 'HEAD') expect(response.jsonBody).toBeUndefined();
      else expect(response.jsonBody).toMatchObject({ error: 'method-not-allowed' });
    }
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });

  it('a GET reaching the POST function (as a test would call it) gets the same 405', async () => {
    const response = await receiveDataverseWebhook(webhookRequest('', { method: 'GET' }), invocationContext().context);
    expect(response).toMatchObject({ status: 405, headers: { Allow: 'POST' } });
  });

  it('the registered HTTP function decides with the app’s inline handlers: the credit-limit example refuses an account above its limit, and nothing is queued', async () => {
    const id = '3f1c1f3e-5b8a-4e5f-9d0e-2a7c6b1d9e01';
    const body = JSON.stringify(
      rawExecutionContext({
        messageName: 'Create',
        entityName: 'account',
        entityId: id,
        stage: 10,
        mode: 0,
        inputParameters: { Target: rawEntity('account', id, { name: 'Contoso', creditlimit: rawMoney(DEFAULT_CREDIT_LIMIT_MAX + 1) }) },
      }),
    );
    const http = invocationContext('dataverseWebhook');
    const response = await receiveDataverseWebhook(webhookRequest(body, { headers: dataverseHeaders({ 'x-ms-dynamics-entity-name': 'account', 'x-ms-dynamics-request-name': 'Create' }) }), http.context);
    expect(response.status).toBe(422);
    expect(response.jsonBody).toMatchObject({ error: 'rejected', handler: 'credit-limit-on-create', code: 'credit-limit-exceeded' });
    expect(http.text()).toContain('Inline handler rejected the operation');
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });
});
