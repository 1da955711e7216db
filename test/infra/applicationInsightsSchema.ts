/**
 * The tables a query sees when its scope is an Application Insights resource (the workbook's
 * `resourceType: microsoft.insights/components` and every alert's `scopes: [applicationInsightsId]`
 * in infra/modules/operations.bicep): the classic names, `customEvents`, `requests`… with their
 * classic columns, even for a workspace-based resource.
 *
 * Source: MicrosoftDocs/azure-docs 056402b, articles/azure-monitor/app/apm-tables.md ("Workspace-based
 * resource changes"), the "ApplicationInsights" column of each table's mapping (Legacy table:
 * customEvents, customMetrics, requests, dependencies, exceptions, traces). One deviation: that page
 * types the classic `success` as string while its workspace counterpart `Success` is Bool; the
 * classic column is a bool too (MicrosoftDocs/azure-reference-other, azure-monitor-ref/tables/
 * includes/requests-include.md: `success | bool`), and is typed so here.
 */
const COMMON = {
  appId: 'string',
  application_Version: 'string',
  appName: 'string',
  client_Browser: 'string',
  client_City: 'string',
  client_CountryOrRegion: 'string',
  client_IP: 'string',
  client_Model: 'string',
  client_OS: 'string',
  client_StateOrProvince: 'string',
  client_Type: 'string',
  cloud_RoleInstance: 'string',
  cloud_RoleName: 'string',
  customDimensions: 'dynamic',
  iKey: 'string',
  itemId: 'string',
  itemType: 'string',
  operation_Id: 'string',
  operation_Name: 'string',
  operation_ParentId: 'string',
  operation_SyntheticSource: 'string',
  sdkVersion: 'string',
  session_Id: 'string',
  timestamp: 'datetime',
  user_AccountId: 'string',
  user_AuthenticatedId: 'string',
  user_Id: 'string',
} as const;

export const APPLICATION_INSIGHTS_TABLES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  customEvents: { ...COMMON, customMeasurements: 'dynamic', itemCount: 'int', name: 'string' },
  customMetrics: {
    ...COMMON,
    name: 'string',
    value: 'real',
    valueCount: 'int',
    valueMax: 'real',
    valueMin: 'real',
    valueStdDev: 'real',
    valueSum: 'real',
  },
  requests: {
    ...COMMON,
    customMeasurements: 'dynamic',
    duration: 'real',
    id: 'string',
    itemCount: 'int',
    name: 'string',
    performanceBucket: 'string',
    resultCode: 'string',
    source: 'string',
    success: 'bool',
    url: 'string',
  },
  dependencies: {
    ...COMMON,
    customMeasurements: 'dynamic',
    data: 'string',
    duration: 'real',
    id: 'string',
    itemCount: 'int',
    name: 'string',
    performanceBucket: 'string',
    resultCode: 'string',
    success: 'bool',
    target: 'string',
    type: 'string',
  },
  exceptions: {
    ...COMMON,
    assembly: 'string',
    customMeasurements: 'dynamic',
    details: 'dynamic',
    handledAt: 'string',
    innermostAssembly: 'string',
    innermostMessage: 'string',
    innermostMethod: 'string',
    innermostType: 'string',
    itemCount: 'int',
    message: 'string',
    method: 'string',
    outerAssembly: 'string',
    outerMessage: 'string',
    outerMethod: 'string',
    outerType: 'string',
    problemId: 'string',
    severityLevel: 'int',
    type: 'string',
  },
  traces: { ...COMMON, customMeasurements: 'dynamic', itemCount: 'int', message: 'string', severityLevel: 'int' },
};
