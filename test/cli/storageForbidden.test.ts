import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_DATA_ROLES } from '../../src/cli/storageConnection';
import { type AppServiceIdentity, startAppServiceIdentity } from '../support/appServiceIdentity';
import { type Exited, runToExit } from '../support/childProcess';
import { type ForbiddenStorage, startForbiddenStorage } from '../support/forbiddenStorage';
import { loopbackCertificate } from '../support/loopbackTls';
import { useTempDirs } from '../support/tempDirs';

/**
 * The CLI against a deployed storage account the signed-in identity has no data role on: as
 * docs/deploy.md runs it (AzureWebJobsStorage__accountName, DefaultAzureCredential), in a process of
 * its own, with the storage and the identity as loopback stand-ins (test/support/forbiddenStorage.ts
 * answers as Azure Storage does; the token comes from test/support/appServiceIdentity.ts through
 * DefaultAzureCredential's managed identity, since no `az` runs here). Each refusal must be one
 * line that names the role the refused request needed, and no stack, XML or OData.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'dataverse-webhooks.js');
const LOOPBACK_ONLY = path.join(ROOT, 'test', 'support', 'loopbackOnly.cjs');
const tempDir = useTempDirs();

let tls: { key: string; certificate: string };
let storage: ForbiddenStorage;
let identity: AppServiceIdentity;

beforeAll(async () => {
  tls = await loopbackCertificate(tempDir('forbidden-tls-'));
  storage = await startForbiddenStorage(tls);
  identity = await startAppServiceIdentity(randomUUID());
});

afterAll(async () => {
  await storage?.close();
  await identity?.close();
});

function cli(args: string[], env: Record<string, string>): Promise<Exited> {
  return runToExit(process.execPath, ['--require', LOOPBACK_ONLY, BIN, ...args], {
    cwd: tempDir('forbidden-cwd-'),
    timeoutMs: 30_000,
    env: {
      PATH: process.env['PATH'] ?? '',
      NODE_EXTRA_CA_CERTS: tls.certificate,
      // DefaultAzureCredential finds the App Service identity endpoint (no az, no azd here).
      IDENTITY_ENDPOINT: identity.endpoint,
      IDENTITY_HEADER: identity.header,
      AZURE_CLIENT_ID: identity.clientId,
      APPLICATIONINSIGHTS_CONNECTION_STRING: '',
      ...env,
    },
  });
}

/** The service whose role a message names (exactly one). */
function namedService(text: string): keyof typeof CLI_DATA_ROLES {
  const named = (Object.keys(CLI_DATA_ROLES) as Array<keyof typeof CLI_DATA_ROLES>).filter((service) =>
    text.includes(`lacks the ${CLI_DATA_ROLES[service]} role `),
  );
  expect(named, text).toHaveLength(1);
  return named[0]!;
}

function expectOneCleanLine(text: string) {
  expect(text.trimEnd().split('\n'), text).toHaveLength(1);
  expect(text).not.toMatch(/<\?xml|<Error>|odata\.error|RequestId:|\n\s+at /);
}

describe('the CLI against storage that refuses it', () => {
  for (const args of [['failures'], ['replay', '--all'], ['failures', 'resolve', randomUUID()]]) {
    it(`${args.join(' ')}: one line naming the data role the refused request needed`, async () => {
      const before = storage.requests.length;
      const result = await cli(args, storage.serviceUris);
      expect(result.code, result.stderr).toBe(1);
      expectOneCleanLine(result.stderr);
      const refused = storage.requests.slice(before);
      expect(refused.length).toBeGreaterThan(0);
      // Every request carried the identity's token for Azure Storage, and was refused for want of a role.
      expect(new Set(refused.map((request) => `${request.authorization} ${request.code}`))).toEqual(
        new Set(['Bearer AuthorizationPermissionMismatch']),
      );
      expect(identity.issued.every((token) => token.resource === 'https://storage.azure.com')).toBe(true);
      // The role of a service a refused request went to (the one the command stopped on).
      const service = namedService(result.stderr);
      expect(refused.map((request) => request.service)).toContain(service);
      expect(result.stderr).toBe(
        `The signed-in identity lacks the ${CLI_DATA_ROLES[service]} role on the storage account (AzureWebJobsStorage from the environment, AuthorizationPermissionMismatch): "azd up" grants it to whoever deploys, or run "az role assignment create --assignee <you> --role '${CLI_DATA_ROLES[service]}' --scope <storage account id>"; a new role takes a few minutes to apply\n`,
      );
    });
  }

  it('status (the backlog alone: no organization) says why the backlog could not be read, on one line, naming the role', async () => {
    const before = storage.requests.length;
    const result = await cli(['status'], storage.serviceUris);
    expect(result.code).toBe(1);
    expectOneCleanLine(result.stderr);
    const service = namedService(result.stderr);
    expect(storage.requests.slice(before).map((request) => request.service)).toContain(service);
    expect(result.stderr).toMatch(new RegExp(`^Backlog not read: The signed-in identity lacks the ${CLI_DATA_ROLES[service]} role `));
  });

  it('an account key, on an account with shared key access off, is told to use the identity instead', async () => {
    const key = Buffer.from('an account key').toString('base64');
    const connection = `DefaultEndpointsProtocol=https;AccountName=stexample;AccountKey=${key};BlobEndpoint=${storage.endpoints.blob};QueueEndpoint=${storage.endpoints.queue};TableEndpoint=${storage.endpoints.table};`;
    const result = await cli(['failures'], { AzureWebJobsStorage: connection });
    expect(result.code).toBe(1);
    expectOneCleanLine(result.stderr);
    expect(result.stderr).not.toContain(key);
    expect(result.stderr).toBe(
      'The storage account does not accept account keys (AzureWebJobsStorage from the environment, KeyBasedAuthenticationNotPermitted): use an identity-based connection, AzureWebJobsStorage__accountName=<account>, signed in with "az login"\n',
    );
  });
});
