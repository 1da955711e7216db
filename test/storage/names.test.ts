import { describe, expect, it } from 'vitest';
import { DEFAULT_STORAGE_NAMES, POISON_QUEUE, poisonQueueName, poisonQueueNameFor } from '../../src/storage/names';

describe('which queues have a poison queue (QueueListenerFactory.cs CreatePoisonQueueReference)', () => {
  it('<queue>-poison, except for a poison queue and where the name would pass 63 characters', () => {
    expect(poisonQueueNameFor('dataverse-events')).toBe('dataverse-events-poison');
    expect(poisonQueueNameFor('dataverse-events-poison')).toBeNull();
    expect(poisonQueueNameFor('a'.repeat(56))).toBe(`${'a'.repeat(56)}-poison`);
    expect(poisonQueueNameFor('a'.repeat(57))).toBeNull();
  });

  it("the app's own queues all have one, and a name without one is refused where the app names it", () => {
    expect(POISON_QUEUE).toBe('dataverse-events-poison');
    expect(poisonQueueName(DEFAULT_STORAGE_NAMES.reconcileQueue)).toBe(`${DEFAULT_STORAGE_NAMES.reconcileQueue}-poison`);
    expect(() => poisonQueueName('a'.repeat(57))).toThrow(/has no poison queue/);
  });
});
