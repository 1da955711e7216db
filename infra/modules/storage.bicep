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
  for queue in [eventsQueue, poisonQueue]: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in [ledgerTable, failuresTable]: {
    parent: tableService
    name: table
  }
]

// Claim-check bodies are deleted by the processor once their event is settled; what this rule
// removes are orphans and the bodies (and poisoned/ copies) of events that were never replayed, so
// it must outlast how long operators take to replay failures. Rejected bodies are kept a month for
// diagnosis. Both hold customer data.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-dataverse-payloads-after-30-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${payloadContainer}/'] }
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
