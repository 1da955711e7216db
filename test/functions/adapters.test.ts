// First: the worker's stand-in takes the function registrations (no test-mode warnings).
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { rawEntity, rawExecutionContext } from '../../src/dataverse/samplePayloads';
import { FUNCTION_NAMES } from '../../src/functionNames';
import { OTHER_METHODS, receiveDataverseWebhook, refuseOtherMethods } from '../../src/functions/dataverseWebhook';
import { processDataverseEvent } from '../../src/functions/processDataverseEvent';
import { allow, decide, reject } from '../../src/handlerApi';
import { handlerFiles } from '../../src/handlers';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';
import { fixture } from '../support/fixtures';
import { dataverseHeaders, invocationContext, webhookRequest } from '../support/requests';
import { drainQueue } from '../support/storage';

// An inline handler of this test, added to the app's list before the functions first use it (as a
// file listed in src/handlers/index.ts would be): the test does not depend on the app's handlers.
const LIMIT = 1_000;
(handlerFiles as unknown[]).push({
  testGate: decide({ name: 'test-gate', entity: 'test_gate', message: 'Create', stage: 'PreValidation' }, (_event, ctx) => {
    const amount = ctx.attribute('amount');
    return typeof amount === 'number' && amount > LIMIT ? reject('Too much', { code: 'too-much' }) : allow();
  }),
});

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
    const http = invocationContext(FUNCTION_NAMES.webhook);
    const response = await receiveDataverseWebhook(webhookRequest(fixture('01-').body), http.context);
    expect(response.status).toBe(202);
    const eventId = (response.jsonBody as { eventId: string }).eventId;
    expect(http.text()).toContain(`eventId=${eventId}`);

    const messages = await drainQueue(storage.eventsQueue);
    expect(messages).toHaveLength(1);
    const queue = invocationContext(FUNCTION_NAMES.processEvent);
    await processDataverseEvent(messages[0], queue.context);
    expect(queue.text()).toContain(`eventId=${eventId}`);
    expect(queue.text()).toContain('table=msdyn_agentstatus');
  });

  it('every other method gets 405 with Allow: POST from the anonymous function, and nothing is stored', async () => {
    for (const method of OTHER_METHODS) {
      const response = await refuseOtherMethods(
        webhookRequest(method === 'GET' || method === 'HEAD' ? '' : fixture('01-').body, { method, query: '' }),
        invocationContext().context,
      );
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

  it('the registered HTTP function decides with the inline handlers of the app’s list: one refuses, and nothing is queued', async () => {
    const id = '3f1c1f3e-5b8a-4e5f-9d0e-2a7c6b1d9e01';
    const body = JSON.stringify(
      rawExecutionContext({
        messageName: 'Create',
        entityName: 'test_gate',
        entityId: id,
        stage: 10,
        mode: 0,
        inputParameters: { Target: rawEntity('test_gate', id, { name: 'Contoso', amount: LIMIT + 1 }) },
      }),
    );
    const http = invocationContext(FUNCTION_NAMES.webhook);
    const response = await receiveDataverseWebhook(
      webhookRequest(body, {
        headers: dataverseHeaders({ 'x-ms-dynamics-entity-name': 'test_gate', 'x-ms-dynamics-request-name': 'Create' }),
      }),
      http.context,
    );
    expect(response.status).toBe(422);
    expect(response.jsonBody).toMatchObject({ error: 'rejected', handler: 'test-gate', code: 'too-much' });
    expect(http.text()).toContain('Inline handler rejected the operation');
    expect(await drainQueue(storage.eventsQueue)).toEqual([]);
  });
});
