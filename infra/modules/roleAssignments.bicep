// What the app's identity may do, and no more: data-plane roles on its storage account (blobs for
// the host's leases and the claim checks, queues for the events, tables for the ledger) and
// publishing telemetry to Application Insights. And what the person (or pipeline) that runs
// `azd up` may do, so that the CLI works against the deployed storage with Entra ID.
param principalId string
param storageAccountName string
param applicationInsightsName string

@description('Whoever deploys (azd passes AZURE_PRINCIPAL_ID); empty: nobody but the app.')
param deployerPrincipalId string
@description('User or ServicePrincipal (azd passes AZURE_PRINCIPAL_TYPE).')
param deployerPrincipalType string

var storageRoles = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
]
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// The CLI's commands against the deployed storage (src/cli/storageConnection.ts names the role a
// 403 lacks): status reads the queues and the failures table; failures records what waits in the
// poison queue (a table write, a queue delete, a blob copy); replay puts messages back and restores
// bodies; failures resolve writes the table. Contributor on each service, never Owner.
var deployerStorageRoles = [
  'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoles: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource telemetryRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerStorageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in (empty(deployerPrincipalId) ? [] : deployerStorageRoles): {
    name: guid(storage.id, deployerPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: deployerPrincipalId
      principalType: deployerPrincipalType
    }
  }
]
