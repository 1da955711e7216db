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

// ---------------------------------------------------------------------------------------------
// App settings. `sites/config appsettings` replaces the whole collection on every provision, so
// every setting the app reads (src/settings.ts, APP_SETTING_NAMES) is a parameter here, fed by the
// azd environment value of the same name (infra/main.parameters.json: `azd env set NAME value`).
// A parameter nobody set is an empty string, which the app reads as unset: its own default, the
// one in docs/settings.md (no default is repeated here). test/infra/settings.test.ts keeps the
// three lists (src/settings.ts, this file, main.parameters.json) the same.

@description('WEBHOOK_MAX_BODY_BYTES: larger bodies get 413 (empty: the app\'s default).')
param webhookMaxBodyBytes string = ''

@description('WEBHOOK_STORAGE_DEADLINE_MS: storage writes not done by then answer 503 (empty: the app\'s default).')
param webhookStorageDeadlineMs string = ''

@description('WEBHOOK_REJECTED_MAX_BYTES: how much of a 400\'d body is kept (empty: the app\'s default).')
param webhookRejectedMaxBytes string = ''

@secure()
@description('WEBHOOK_REQUIRED_HEADERS: HttpHeader registrations, a JSON object {"name": ["value", "next value"]} (empty: none).')
param webhookRequiredHeaders object = {}

@secure()
@description('WEBHOOK_REQUIRED_QUERY: HttpQueryString registrations, the same for query parameters (empty: none).')
param webhookRequiredQuery object = {}

@description('WEBHOOK_ALLOWED_ORGANIZATIONS: organization host names or ids allowed to post (empty allows all).')
param webhookAllowedOrganizations string = ''

@description('WEBHOOK_DECISION_TIMEOUT_MS: how long one inline handler may take (empty: the app\'s default).')
param webhookDecisionTimeoutMs string = ''

@description('PROCESSOR_MAX_DEPTH: events deeper than this are recorded, not handled (empty: the app\'s default).')
param processorMaxDepth string = ''

@description('PROCESSOR_LEASE_SECONDS: how long a unit\'s lease lasts (empty: the app\'s default).')
param processorLeaseSeconds string = ''

@description('PROCESSOR_DEFER_JITTER_SECONDS: the largest random wait added to a copy that waits for a lease (empty: the app\'s default).')
param processorDeferJitterSeconds string = ''

@description('PROCESSOR_HANDLER_TIMEOUT_SECONDS: how long one handler call may run (empty: the app\'s default).')
param processorHandlerTimeoutSeconds string = ''

@description('DATAVERSE_URL: the organization the app re-reads truncated records from, e.g. https://contoso.crm.dynamics.com.')
param dataverseUrl string = ''

@description('RETENTION_DAYS: how long ledger rows, and replayed or resolved failure records, are kept (empty: the app\'s default).')
param retentionDays string = ''

@description('RECONCILE_INTERVAL: minutes between two reconcile runs (empty: the app\'s default, 15).')
param reconcileInterval string = ''

@description('HANDLER_SETTINGS: the settings your handlers read, a JSON object of names to values, e.g. {"ACCOUNT_CREDIT_LIMIT_MAX": "250000"}.')
param handlerSettings object = {}

@secure()
@description('HANDLER_SECRET_SETTINGS: the same for handler settings that hold secrets.')
param handlerSecretSettings object = {}

// ---------------------------------------------------------------------------------------------

@description('AZURE_PRINCIPAL_ID (azd sets it: whoever runs azd up): gets the storage data roles the CLI needs (status, failures, replay). Empty: nobody.')
param principalId string = ''

@description('AZURE_PRINCIPAL_TYPE (azd sets it): User or ServicePrincipal.')
@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

@description('Where alerts are e-mailed (empty: no e-mail receiver; the alerts still show in the portal).')
param alertEmail string = ''

@description('Alert when more than this percentage of webhooks in 15 minutes were answered 503.')
param unavailablePercentThreshold int = 5

@description('Alert when the oldest event on the main queue has waited longer than this many minutes.')
param queueAgeAlertMinutes int = 15

@description('Alert when more than this many processing attempts failed in 15 minutes.')
param processingFailuresThreshold int = 10

@description('Alert when the app sent no heartbeat for this many minutes (10, 15, 30 or 45).')
@allowed([10, 15, 30, 45])
param appDownAlertMinutes int = 10

@description('The largest number of instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// What the app reads, by setting name: each parameter above under the name of its azd value.
var appSettings = {
  WEBHOOK_MAX_BODY_BYTES: webhookMaxBodyBytes
  WEBHOOK_STORAGE_DEADLINE_MS: webhookStorageDeadlineMs
  WEBHOOK_REJECTED_MAX_BYTES: webhookRejectedMaxBytes
  WEBHOOK_ALLOWED_ORGANIZATIONS: webhookAllowedOrganizations
  WEBHOOK_DECISION_TIMEOUT_MS: webhookDecisionTimeoutMs
  PROCESSOR_MAX_DEPTH: processorMaxDepth
  PROCESSOR_LEASE_SECONDS: processorLeaseSeconds
  PROCESSOR_DEFER_JITTER_SECONDS: processorDeferJitterSeconds
  PROCESSOR_HANDLER_TIMEOUT_SECONDS: processorHandlerTimeoutSeconds
  DATAVERSE_URL: dataverseUrl
  RETENTION_DAYS: retentionDays
  RECONCILE_INTERVAL: reconcileInterval
}
// The JSON settings arrive as objects (azd parses an object parameter's value as JSON) and are
// written back as JSON text; an empty object is an empty setting.
var secretAppSettings = {
  WEBHOOK_REQUIRED_HEADERS: empty(webhookRequiredHeaders) ? '' : string(webhookRequiredHeaders)
  WEBHOOK_REQUIRED_QUERY: empty(webhookRequiredQuery) ? '' : string(webhookRequiredQuery)
}
// App settings are text: a handler setting given as a number or a boolean is written as its text.
var handlerAppSettings = toObject(items(handlerSettings), entry => entry.key, entry => string(entry.value))
var handlerSecretAppSettings = toObject(items(handlerSecretSettings), entry => entry.key, entry => string(entry.value))

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
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
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
    // The engine's settings win over a handler setting of the same name.
    appSettings: union(handlerAppSettings, appSettings)
    secretAppSettings: union(handlerSecretAppSettings, secretAppSettings)
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
    appDownMinutes: appDownAlertMinutes
  }
}

// azd writes these outputs into the environment (`azd env get-values`); `register --key-from-azure`
// reads AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_FUNCTION_APP_NAME from it.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output WEBHOOK_URL string = '${functionApp.outputs.uri}/api/dataverse/webhook'
