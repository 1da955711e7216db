import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_DATA_ROLES } from '../../src/cli/storageConnection';
import { webhookUrl } from '../../src/functionNames';
import { DEFAULT_STORAGE_NAMES, POISON_QUEUE } from '../../src/storage/names';

/**
 * No Bicep compiler runs here (it is a download, not an npm package), so these checks hold the
 * templates to what the code expects: the same storage names, no key anywhere, Node 22 on Flex
 * Consumption, the roles the identity needs, and azd's service tag.
 */
const root = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const storage = read('infra/modules/storage.bicep');
const functionApp = read('infra/modules/functionApp.bicep');
const everyTemplate = ['infra/main.bicep', ...readdirSync(path.join(root, 'infra', 'modules')).map((file) => `infra/modules/${file}`)]
  .map(read)
  .join('\n');

describe('the infrastructure templates', () => {
  it('create every queue, container and table the app uses, by the names in src/storage/names.ts', () => {
    expect(storage).toContain(`var eventsQueue = '${DEFAULT_STORAGE_NAMES.eventsQueue}'`);
    expect(POISON_QUEUE).toBe(`${DEFAULT_STORAGE_NAMES.eventsQueue}-poison`);
    expect(storage).toContain(`var poisonQueue = '\${eventsQueue}-poison'`);
    expect(storage).toContain(`var payloadContainer = '${DEFAULT_STORAGE_NAMES.payloadContainer}'`);
    expect(storage).toContain(`var rejectedContainer = '${DEFAULT_STORAGE_NAMES.rejectedContainer}'`);
    expect(storage).toContain(`var ledgerTable = '${DEFAULT_STORAGE_NAMES.ledgerTable}'`);
    expect(storage).toContain(`var failuresTable = '${DEFAULT_STORAGE_NAMES.failuresTable}'`);
    expect(storage).toContain(`var reconcileQueue = '${DEFAULT_STORAGE_NAMES.reconcileQueue}'`);
    expect(storage).toContain(`var reconcilePoisonQueue = '\${reconcileQueue}-poison'`);
    expect(storage).toContain(`var reconcileTable = '${DEFAULT_STORAGE_NAMES.reconcileTable}'`);
    expect(storage).toMatch(/for queue in \[eventsQueue, poisonQueue, reconcileQueue, reconcilePoisonQueue\]/);
    expect(storage).toMatch(/for container in \[deploymentContainer, payloadContainer, rejectedContainer\]/);
    expect(storage).toMatch(/for table in \[ledgerTable, failuresTable, reconcileTable\]/);
  });

  it('delete claim-check bodies after 30 days, as long as rejected bodies, and never the poisoned/ copies', () => {
    // Claim-check blobs are <eventId>.json, the eventId a lowercase UUID: the sixteen hex prefixes
    // match every one of them and nothing under poisoned/ (test/pipeline/retention.test.ts checks a real name).
    const prefixes = [...storage.matchAll(/for digit in \[([^\]]+)\]: '\$\{payloadContainer\}\/\$\{digit\}'/g)].flatMap((match) =>
      match[1]!.split(',').map((digit) => digit.trim().replaceAll("'", '')),
    );
    expect(prefixes.sort()).toEqual([...'0123456789abcdef']);
    for (const list of ['claimCheckPrefixesLow', 'claimCheckPrefixesHigh']) {
      expect(storage).toMatch(
        new RegExp(`prefixMatch: ${list} \\}\\s+actions: \\{ baseBlob: \\{ delete: \\{ daysAfterModificationGreaterThan: 30 \\} \\} \\}`),
      );
    }
    expect(storage).not.toMatch(/prefixMatch: \['\$\{payloadContainer\}\/'\]/);
    expect(storage).toMatch(
      /prefixMatch: \['\$\{rejectedContainer\}\/'\] \}\s+actions: \{ baseBlob: \{ delete: \{ daysAfterModificationGreaterThan: 30 \} \} \}/,
    );
  });

  it('use no account key: shared key access off, identity-based AzureWebJobsStorage, no listKeys', () => {
    expect(storage).toContain('allowSharedKeyAccess: false');
    expect(everyTemplate).not.toMatch(/listKeys\(|AccountKey=|DefaultEndpointsProtocol/i);
    expect(functionApp).toContain('AzureWebJobsStorage__accountName: storage.name');
    expect(functionApp).toContain("AzureWebJobsStorage__credential: 'managedidentity'");
    expect(functionApp).toContain('AzureWebJobsStorage__clientId: identityClientId');
    expect(functionApp).not.toMatch(/^\s+AzureWebJobsStorage:/m);
    expect(functionApp).toContain(`APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=\${identityClientId};Authorization=AAD'`);
  });

  it('run Node 22 on Flex Consumption as the user-assigned identity', () => {
    expect(functionApp).toMatch(/name: 'FC1'\s+tier: 'FlexConsumption'/);
    expect(functionApp).toMatch(/runtime: \{\s+name: 'node'\s+version: '22'\s+\}/);
    // Developers run what Azure runs: .nvmrc names the same major, and engines admits it.
    expect(readFileSync(path.join(root, '.nvmrc'), 'utf8').trim()).toBe('22');
    const engines = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(engines.split('||').map((range) => range.trim())).toContain('^22');
    expect(functionApp).toMatch(/type: 'UserAssigned'/);
    expect(functionApp).toMatch(/type: 'UserAssignedIdentity'\s+userAssignedIdentityResourceId: identityId/);
  });

  it('grant the identity the storage data roles and Monitoring Metrics Publisher', () => {
    const roles = read('infra/modules/roleAssignments.bicep');
    for (const [id, name] of [
      ['b7e6dc6d-f1e8-4753-8033-0f276bb0955b', 'Storage Blob Data Owner'],
      ['974c5e8b-45b9-4653-ba55-5f855dd0fb88', 'Storage Queue Data Contributor'],
      ['0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', 'Storage Table Data Contributor'],
    ]) {
      expect(roles).toContain(`'${id}' // ${name}`);
    }
    expect(roles).toContain("var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'");
  });

  it('grant whoever runs azd up (AZURE_PRINCIPAL_ID) the data roles the CLI needs, and nobody when it is empty', () => {
    const roles = read('infra/modules/roleAssignments.bicep');
    const main = read('infra/main.bicep');
    const deployerRoles = /var deployerStorageRoles = \[([\s\S]*?)\n\]/.exec(roles)?.[1] ?? '';
    // The built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
    const named = [...deployerRoles.matchAll(/'([0-9a-f-]{36})' \/\/ (.+)$/gm)].map((match) => [match[1], match[2]]);
    expect(named).toEqual([
      ['ba92f5b4-2d11-453d-a403-e96b0029c9fe', CLI_DATA_ROLES.blob],
      ['974c5e8b-45b9-4653-ba55-5f855dd0fb88', CLI_DATA_ROLES.queue],
      ['0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', CLI_DATA_ROLES.table],
    ]);
    expect(roles).toMatch(
      /resource deployerStorageRoleAssignments 'Microsoft\.Authorization\/roleAssignments@[\d-]+' = \[\s+for roleId in \(empty\(deployerPrincipalId\) \? \[\] : deployerStorageRoles\): \{[\s\S]*?scope: storage[\s\S]*?principalId: deployerPrincipalId\s+principalType: deployerPrincipalType/,
    );
    expect(main).toMatch(/^param principalId string = ''$/m);
    expect(main).toContain('deployerPrincipalId: principalId');
    expect(main).toContain('deployerPrincipalType: principalType');
    const parameters = JSON.parse(read('infra/main.parameters.json')).parameters;
    expect(parameters.principalId).toEqual({ value: `\${AZURE_PRINCIPAL_ID}` });
    expect(parameters.principalType).toEqual({ value: `\${AZURE_PRINCIPAL_TYPE}` });
  });

  it('give azd a service whose name matches the Function App’s azd-service-name tag, and the webhook URL', () => {
    const azureYaml = read('azure.yaml');
    const service = azureYaml.match(/^services:\n {2}([a-z-]+):\n(?: {4}.*\n)*/m);
    expect(service?.[1]).toBe('api');
    expect(service?.[0]).toContain('host: function');
    expect(functionApp).toContain(`'azd-service-name': '${service?.[1]}'`);
    expect(read('infra/main.bicep')).toContain(`output WEBHOOK_URL string = '${webhookUrl(`\${functionApp.outputs.uri}`)}'`);
  });

  it('declare every parameter main.parameters.json passes', () => {
    const parameters = Object.keys(JSON.parse(read('infra/main.parameters.json')).parameters as Record<string, unknown>);
    const main = read('infra/main.bicep');
    for (const name of parameters) expect(main).toMatch(new RegExp(`^param ${name} `, 'm'));
  });
});
