// The dataverse-webhooks Function App and everything it runs on, for `azd up`.
// One module per concern; the app reaches storage and Application Insights with a user-assigned
// managed identity, so no account key or instrumentation key is in any setting.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('The Azure region, e.g. westeurope. Flex Consumption must be offered there.')
param location string

@description('WEBHOOK_ALLOWED_ORGANIZATIONS: organization host names or ids allowed to post (empty allows all).')
param allowedOrganizations string = ''

@description('DATAVERSE_URL: the organization the app re-reads truncated records from, e.g. https://contoso.crm.dynamics.com.')
param dataverseUrl string = ''

@description('RETENTION_DAYS: how long ledger rows, and replayed or resolved failure records, are kept (empty: the app\'s default, 7).')
param retentionDays string = ''

@description('Where alerts are e-mailed (empty: no e-mail receiver; the alerts still show in the portal).')
param alertEmail string = ''

@description('Alert when more than this percentage of webhooks in 15 minutes were answered 503.')
param unavailablePercentThreshold int = 5

@description('Alert when the oldest event on the main queue has waited longer than this many minutes.')
param queueAgeAlertMinutes int = 15

@description('Alert when more than this many processing attempts failed in 15 minutes.')
param processingFailuresThreshold int = 10

@description('The largest number of instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: resourceGroup
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: resourceGroup
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: resourceGroup
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
  }
}

module roleAssignments 'modules/roleAssignments.bicep' = {
  name: 'roleAssignments'
  scope: resourceGroup
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  scope: resourceGroup
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    allowedOrganizations: allowedOrganizations
    dataverseUrl: dataverseUrl
    retentionDays: retentionDays
    maximumInstanceCount: maximumInstanceCount
  }
  // The host reads its storage with the identity from its first start: grant the roles first.
  dependsOn: [roleAssignments]
}

module operations 'modules/operations.bicep' = {
  name: 'operations'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    actionGroupName: 'ag-${resourceToken}'
    workbookName: 'dataverse-webhooks (${environmentName})'
    alertEmail: alertEmail
    unavailablePercentThreshold: unavailablePercentThreshold
    queueAgeMinutes: queueAgeAlertMinutes
    processingFailuresThreshold: processingFailuresThreshold
  }
}

// azd writes these outputs into the environment (`azd env get-values`); `register --key-from-azure`
// reads AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_FUNCTION_APP_NAME from it.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output WEBHOOK_URL string = '${functionApp.outputs.uri}/api/dataverse/webhook'
