// One storage account for the Functions host (AzureWebJobsStorage), the deployment package, and the
// app's own queues, containers and tables. Shared key access is off: every client uses Entra ID.
// The names match src/storage/names.ts (test/infra/infra.test.ts checks that they do).
param name string
param location string
param tags object

var eventsQueue = 'dataverse-events'
var poisonQueue = '${eventsQueue}-poison'
var payloadContainer = 'dataverse-payloads'
var rejectedContainer = 'dataverse-rejected'
var deploymentContainer = 'app-package'
var ledgerTable = 'DataverseEventLedger'
var failuresTable = 'DataverseEventFailures'
// Reconciliation (docs/reconcile.md): each page of changes a run found waits on this queue.
var reconcileQueue = 'dataverse-reconcile'
var reconcilePoisonQueue = '${reconcileQueue}-poison'
var reconcileTable = 'DataverseReconcile'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in [deploymentContainer, payloadContainer, rejectedContainer]: {
    parent: blobService
    name: container
    properties: { publicAccess: 'None' }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in [eventsQueue, poisonQueue, reconcileQueue, reconcilePoisonQueue]: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in [ledgerTable, failuresTable, reconcileTable]: {
    parent: tableService
    name: table
  }
]

// Claim-check bodies (named <eventId>.json, the eventId a lowercase UUID) are deleted by the
// processor once their event is settled; what this rule removes are orphans (an enqueue that failed
// after the upload) and the bodies of events that never settled. It matches the sixteen hex
// prefixes, so it never reaches poisoned/: a poisoned event's message and body copy stay until it is
// replayed or resolved, and the retention timer removes them after. Rejected bodies are kept a
// month for diagnosis. Both hold customer data.
var claimCheckPrefixesLow = [for digit in ['0', '1', '2', '3', '4', '5', '6', '7']: '${payloadContainer}/${digit}']
var claimCheckPrefixesHigh = [for digit in ['8', '9', 'a', 'b', 'c', 'd', 'e', 'f']: '${payloadContainer}/${digit}']

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        // A rule takes at most 10 prefixes: two rules.
        {
          name: 'delete-claim-checks-0-7-after-30-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: claimCheckPrefixesLow }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 30 } } }
          }
        }
        {
          name: 'delete-claim-checks-8-f-after-30-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: claimCheckPrefixesHigh }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 30 } } }
          }
        }
        {
          name: 'delete-dataverse-rejected-after-30-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${rejectedContainer}/'] }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: 30 } } }
          }
        }
      ]
    }
  }
  dependsOn: [containers]
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer
