// What an operator watches, deployed with the app: an Azure Monitor workbook over the app's
// telemetry, and alert rules that e-mail an action group. Every query is a .kql file under
// infra/monitoring/, loaded here as it is (loadTextContent), so test/infra/monitoring.test.ts reads
// exactly what deploys and checks each telemetry name against src/observability/telemetry.ts.
param location string
param tags object
param applicationInsightsId string
param actionGroupName string
param workbookName string

@description('Where alerts are e-mailed; empty: the action group has no e-mail receiver (alerts still show in the portal).')
param alertEmail string

@description('Alert when more than this percentage of webhooks in 15 minutes were answered 503.')
param unavailablePercentThreshold int

@description('Alert when the oldest event on the main queue has waited longer than this many minutes.')
param queueAgeMinutes int

@description('Alert when more than this many processing attempts failed in 15 minutes.')
param processingFailuresThreshold int

@description('Alert when the app sent no heartbeat (monitorBacklog, every minute) for this many minutes: 10, 15, 30 or 45.')
@allowed([10, 15, 30, 45])
param appDownMinutes int

// One panel per question; each is a query file beside its siblings.
var panels = [
  {
    title: 'Events accepted, processed and poisoned per minute'
    query: loadTextContent('../monitoring/panels/events-per-minute.kql')
    visualization: 'timechart'
  }
  {
    title: 'Acknowledgement latency (ms): p50, p95, p99'
    query: loadTextContent('../monitoring/panels/ack-latency.kql')
    visualization: 'timechart'
  }
  {
    title: 'Processing latency per attempt (ms): p50, p95, p99'
    query: loadTextContent('../monitoring/panels/processing-latency.kql')
    visualization: 'timechart'
  }
  {
    title: 'Time on the queue (ms)'
    query: loadTextContent('../monitoring/panels/queue-wait.kql')
    visualization: 'timechart'
  }
  {
    title: '503s by cause'
    query: loadTextContent('../monitoring/panels/unavailable-by-cause.kql')
    visualization: 'barchart'
  }
  {
    title: 'Oldest queued message (s), per queue'
    query: loadTextContent('../monitoring/panels/queue-age.kql')
    visualization: 'timechart'
  }
  {
    title: 'Queue lengths and poisoned events waiting'
    query: loadTextContent('../monitoring/panels/queue-length.kql')
    visualization: 'timechart'
  }
  {
    title: 'Inline decisions by outcome'
    query: loadTextContent('../monitoring/panels/decisions-by-outcome.kql')
    visualization: 'table'
  }
  {
    title: 'Top failing handlers'
    query: loadTextContent('../monitoring/panels/failing-handlers.kql')
    visualization: 'table'
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    for (panel, index) in panels: {
      type: 3
      name: 'panel-${index}'
      content: {
        version: 'KqlItem/1.0'
        query: panel.query
        size: 0
        title: panel.title
        timeContext: { durationMs: 86400000 }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: panel.visualization
      }
    }
  ]
  fallbackResourceIds: [applicationInsightsId]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, workbookName)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: workbookName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(workbookContent)
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'dvwebhooks'
    enabled: true
    // The Bicep writes '' for a parameter nobody gave: no receiver then, rather than an invalid one.
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Each alert: its query file, how its result is read, and when it fires. Evaluated every 5 minutes.
// All but app-down read what the running app sends, so a stopped app fires none of them.
var alerts = [
  {
    name: 'poisoned-event'
    description: 'An event was poisoned: it is not retried until replayed ("dataverse-webhooks failures", then "replay" or "failures resolve").'
    severity: 1
    query: loadTextContent('../monitoring/alerts/poisoned.kql')
    timeAggregation: 'Count'
    metricMeasureColumn: ''
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
  }
  {
    name: 'webhook-503-rate'
    description: 'Too many webhooks were answered 503: Dataverse retries each once, then gives up.'
    severity: 1
    query: loadTextContent('../monitoring/alerts/unavailable-rate.kql')
    timeAggregation: 'Maximum'
    metricMeasureColumn: 'unavailablePercent'
    operator: 'GreaterThan'
    threshold: unavailablePercentThreshold
    windowSize: 'PT15M'
  }
  {
    name: 'queue-age'
    description: 'The oldest event on the main queue has waited too long: processing is stopped or behind.'
    severity: 2
    query: loadTextContent('../monitoring/alerts/queue-age.kql')
    timeAggregation: 'Maximum'
    metricMeasureColumn: 'oldestSeconds'
    operator: 'GreaterThan'
    threshold: queueAgeMinutes * 60
    windowSize: 'PT5M'
  }
  {
    name: 'processing-failures'
    description: 'Processing attempts are failing (each is retried; five failures poison an event).'
    severity: 2
    query: loadTextContent('../monitoring/alerts/processing-failures.kql')
    timeAggregation: 'Count'
    metricMeasureColumn: ''
    operator: 'GreaterThan'
    threshold: processingFailuresThreshold
    windowSize: 'PT15M'
  }
  {
    name: 'app-down'
    description: 'The app sent no heartbeat: it is stopped, failing to start, cannot read its storage, or its telemetry does not arrive. No other alert can fire while this one does.'
    severity: 1
    query: loadTextContent('../monitoring/alerts/app-down.kql')
    timeAggregation: 'Maximum'
    metricMeasureColumn: 'heartbeats'
    operator: 'LessThan'
    threshold: 1
    windowSize: 'PT${appDownMinutes}M'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = [
  for alert in alerts: {
    name: '${actionGroupName}-${alert.name}'
    location: location
    tags: tags
    properties: {
      displayName: alert.name
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [applicationInsightsId]
      evaluationFrequency: 'PT5M'
      windowSize: alert.windowSize
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: alert.timeAggregation
            metricMeasureColumn: empty(alert.metricMeasureColumn) ? null : alert.metricMeasureColumn
            operator: alert.operator
            threshold: alert.threshold
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      actions: { actionGroups: [actionGroup.id] }
    }
  }
]

output workbookId string = workbook.id
output actionGroupId string = actionGroup.id
