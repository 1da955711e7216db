import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main';
import { checkSettings, readIngestSettings, readProcessSettings } from '../../src/settings';
import { storageConnectionFrom } from '../../src/storage/clients';
import { captureIO } from '../support/cliIO';
import { useTempDirs } from '../support/tempDirs';

/**
 * An empty value is an unset one, for every setting the app and the CLI read: `VAR= command` is how
 * CI clears a variable, and the Bicep writes '' for a parameter nobody gave.
 */
const tempDir = useTempDirs();

describe('an empty setting is unset', () => {
  it('AzureWebJobsStorage= dataverse-webhooks failures falls back to local.settings.json', async () => {
    const app = tempDir('empty-setting-');
    writeFileSync(
      path.join(app, 'local.settings.json'),
      JSON.stringify({ IsEncrypted: false, Values: { AzureWebJobsStorage: inject('azuriteConnectionString') } }),
    );
    const io = captureIO({ cwd: app, env: { AzureWebJobsStorage: '', AzureWebJobsStorage__accountName: ' ', DATAVERSE_URL: '' } });
    expect(await main(['failures'], io)).toBe(0);
    expect(io.err()).toBe('No poisoned events.\n');
  });

  it('an empty DATAVERSE_URL is no organization for the CLI: the usage line, not a URL error', async () => {
    const io = captureIO({ env: { DATAVERSE_URL: '' } });
    expect(await main(['types', '--tables', 'account'], io)).toBe(2);
    expect(io.err()).toMatch(/^Which organization\?/);
  });

  it('the app: empty storage settings fall through to the ones that are set, and empty app settings take their defaults', () => {
    const connection = storageConnectionFrom({
      AzureWebJobsStorage: '',
      AzureWebJobsStorage__accountName: 'contoso',
      AzureWebJobsStorage__blobServiceUri: '',
      AzureWebJobsStorage__credential: 'managedidentity',
      AzureWebJobsStorage__clientId: '',
    });
    expect(connection).toMatchObject({
      kind: 'identity',
      blobUrl: 'https://contoso.blob.core.windows.net',
      queueUrl: 'https://contoso.queue.core.windows.net',
    });
    const empty = { WEBHOOK_MAX_BODY_BYTES: '', WEBHOOK_ALLOWED_ORGANIZATIONS: ' ', PROCESSOR_LEASE_SECONDS: '', DATAVERSE_URL: '' };
    expect(checkSettings(empty)).toEqual([]);
    expect(readIngestSettings(empty).maxBodyBytes).toBe(4 * 1024 * 1024);
    expect(readProcessSettings(empty).dataverseUrl).toBeNull();
  });
});
