import { afterAll, beforeAll } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../devhost/azurite';
import { createStorageClients, type StorageClients } from '../../src/storage/clients';
import { STORAGE_CONNECTION } from '../../src/storage/names';

/**
 * An Azurite of the enclosing describe block (or file) alone, empty when its tests start, stopped
 * after them: for what uses the app's real storage names (the CLI's commands, `status`), which
 * every other test on the shared Azurite could see. Call it where beforeAll would go. Tests that
 * can take names of their own use isolatedStorage (storage.ts) on the shared one instead.
 */
export interface OwnAzurite {
  readonly connectionString: string;
  /** The app's clients on it, with the app's real names. */
  storage(): StorageClients;
  /** The environment a command reads its storage from. */
  env(): { [STORAGE_CONNECTION]: string };
}

export function useOwnAzurite(): OwnAzurite {
  let azurite: AzuriteInstance | undefined;
  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(() => azurite?.stop());
  const running = () => {
    if (!azurite) throw new Error('useOwnAzurite(): its Azurite starts in beforeAll; use it inside a test or a hook');
    return azurite;
  };
  return {
    get connectionString() {
      return running().connectionString;
    },
    storage: () => createStorageClients(running().connectionString),
    env: () => ({ [STORAGE_CONNECTION]: running().connectionString }),
  };
}
