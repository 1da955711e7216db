import { QueueServiceClient } from '@azure/storage-queue';
import { expect, inject, test } from 'vitest';

test('the shared test Azurite serves queues on loopback', async () => {
  const service = QueueServiceClient.fromConnectionString(inject('azuriteConnectionString'));
  const queue = service.getQueueClient('smoke');
  await queue.createIfNotExists();
  await queue.sendMessage('hello');
  const received = await queue.receiveMessages();
  expect(received.receivedMessageItems[0]?.messageText).toBe('hello');
});
