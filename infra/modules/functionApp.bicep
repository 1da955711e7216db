// The Function App on Flex Consumption (Linux, Node 22), running as the user-assigned identity.
// AzureWebJobsStorage is an identity-based connection (AzureWebJobsStorage__*), so the host, the
// queue trigger and the deployment package all reach storage without a key.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
@secure()
param applicationInsightsConnectionString string
@description('The settings the app reads, by name (infra/main.bicep); an empty value is unset: the app\'s default.')
param appSettings object
@secure()
@description('The same for the settings that hold credentials.')
param secretAppSettings object
param maximumInstanceCount int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd deploys the "api" service of azure.yaml to the resource carrying this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: 2048
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }

  // The whole collection, on every provision: the app's settings, then what the platform needs
  // (which wins over an app setting of the same name).
  resource appSettingsConfig 'config' = {
    name: 'appsettings'
    properties: union(appSettings, secretAppSettings, {
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      // Application Insights accepts telemetry only from Entra ID (local authentication is off): the
      // app's telemetry authenticates as this identity (src/observability/telemetry.ts reads it).
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // For re-reading truncated records: DefaultAzureCredential picks the user-assigned identity
      // by AZURE_CLIENT_ID; that identity needs an application user in the Dataverse organization.
      AZURE_CLIENT_ID: identityClientId
    })
  }
}

// Publishing with a user name and password is off: azd and func deploy with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: { allow: false }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: { allow: false }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
