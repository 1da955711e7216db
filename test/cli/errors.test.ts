import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { describeFailure, main } from '../../src/cli/main';
import { createStatusCommand } from '../../src/cli/status';
import { createAzureTokenProvider } from '../../src/dataverseApi';
import { captureIO } from '../support/cliIO';
import { startFakeDataverse } from '../support/fakeDataverse';
import { useTempDirs } from '../support/tempDirs';

/**
 * Every CLI error is one actionable line: what failed, where the setting came from, what to do.
 * No stack, no raw storage XML or OData JSON, no key, password or connection string.
 */

const tempDir = useTempDirs();
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function expectOneLine(text: string, ...secrets: string[]) {
  expect(text.endsWith('\n')).toBe(true);
  expect(text.trimEnd().split('\n')).toHaveLength(1);
  expect(text).not.toMatch(/<\?xml|odata\.error|\n\s+at /);
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('CLI errors', () => {
  it('failures with Azurite down says where the connection came from and what to start', async () => {
    const dir = tempDir('cli-errors-');
    const port = await closedPort();
    const connection = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:${port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`;
    writeFileSync(path.join(dir, 'local.settings.json'), JSON.stringify({ Values: { AzureWebJobsStorage: connection } }));
    const io = captureIO({ cwd: dir, env: {} });
    expect(await main(['failures'], io)).toBe(1);
    expect(io.err()).toBe(
      `Could not reach the storage account at 127.0.0.1:${port} (AzureWebJobsStorage from ${path.join(dir, 'local.settings.json')}): connection refused. Is Azurite running? "npm start" starts it (or run "npx azurite --inMemoryPersistence")\n`,
    );
    expectOneLine(io.err(), AZURITE_KEY);
  });

  it('a connection string that is not one, from the environment, is named without being repeated', async () => {
    for (const connection of ['not-a-connection-string', `DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${AZURITE_KEY}`]) {
      const io = captureIO({ env: { AzureWebJobsStorage: connection } });
      expect(await main(['failures'], io)).toBe(1);
      expect(io.err()).toMatch(
        /^AzureWebJobsStorage from the environment is not a valid connection string \(.+\): copy it again from the storage account's Access keys/,
      );
      expectOneLine(io.err(), AZURITE_KEY, 'not-a-connection-string');
    }
  });

  it('a wrong account key is refused by storage, and said so', async () => {
    const wrong = inject('azuriteConnectionString').replace(
      /AccountKey=[^;]+/,
      `AccountKey=${Buffer.from('not the key').toString('base64')}`,
    );
    const io = captureIO({ env: { AzureWebJobsStorage: wrong } });
    expect(await main(['failures'], io)).toBe(1);
    expect(io.err()).toMatch(
      /^The storage account refused the credentials \(AzureWebJobsStorage from the environment, (AuthorizationFailure|AuthenticationFailed)\): check the AccountKey/,
    );
    expectOneLine(io.err(), 'bm90IHRoZSBrZXk=');
  });

  it('status and register without an Azure login say how to sign in, on one line', async () => {
    const dataverse = await startFakeDataverse();
    try {
      // What DefaultAzureCredential throws when nothing is signed in: one error per credential it tried.
      const unavailable = (message: string) => Object.assign(new Error(message), { name: 'CredentialUnavailableError' });
      const notSignedIn = {
        getToken: async () => {
          throw Object.assign(
            new Error(
              'ChainedTokenCredential authentication failed.\nCredentialUnavailableError: EnvironmentCredential is unavailable.\nCredentialUnavailableError: Azure CLI could not be found.',
            ),
            {
              name: 'AggregateAuthenticationError',
              errors: [unavailable('EnvironmentCredential is unavailable.'), unavailable('Azure CLI could not be found.')],
            },
          );
        },
      };
      const io = captureIO({ env: { DATAVERSE_URL: dataverse.url }, cwd: tempDir('cli-errors-') });
      const error = await createStatusCommand({ tokens: () => createAzureTokenProvider(notSignedIn) })([], io).catch(
        (caught: unknown) => caught,
      );
      const { line, code } = describeFailure(error, 'status', io);
      expect(code).toBe(1);
      expect(line).toBe(
        `Not signed in to Azure: run "az login" (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal) to get a token for ${dataverse.url}`,
      );
      expect(dataverse.requests).toEqual([]);
    } finally {
      await dataverse.close();
    }
  });

  it('inspect of a folder, and an unknown option, are usage mistakes on one line', async () => {
    const folder = captureIO();
    expect(await main(['inspect', tempDir('cli-errors-')], folder)).toBe(2);
    expect(folder.err()).toMatch(/^.+ is a folder: give a file \(or - for stdin\) \(see "dataverse-webhooks inspect --help"\)\n$/);
    const unknown = captureIO();
    expect(await main(['failures', '--colour'], unknown)).toBe(2);
    expect(unknown.err()).toBe(`Unknown option '--colour' (see "dataverse-webhooks failures --help")\n`);
  });
});
