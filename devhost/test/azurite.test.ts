import { inject, test, expect } from 'vitest';
import { QueueServiceClient } from '@azure/storage-queue';

test('the shared test Azurite serves queues on loopback', async () => {
  const service = QueueServiceClient.fromConnectionString(inject('azuriteConnectionString'));
  const queue = service.getQueueClient('smoke');
  await queue.createIfNotExists();
  await queue.sendMessage('hello');
  const received = await queue.receiveMessages();
  expect(received.receivedMessageItems[0]?.messageText).toBe('hello');
});
