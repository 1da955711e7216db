import { randomUUID } from 'node:crypto';
import { forEachConcurrently } from '../../concurrency';
import { parseDataverseWebhookOrThrow } from '../../dataverse';
import { type ColumnKind, reconciledContext } from '../../dataverse/reconciledContext';
import type { ReconcilableMessage } from '../../dataverse/reconcileRules';
import { type ChangedRow, changedRow, rowVersionOf } from '../../dataverseApi/changeTracking';
import { describeError, type EventLog } from '../../observability/log';
import { NO_TELEMETRY, type Telemetry } from '../../observability/telemetry';
import { AppliedChanges, newestApplied } from '../../storage/appliedChanges';
import { putPayload } from '../../storage/claimCheck';
import type { StorageClients } from '../../storage/clients';
import { encodeQueueMessage, fitsInQueueMessage, sendEncodedQueueMessage } from '../../storage/queueMessages';
import { ENVELOPE_VERSION, type EventEnvelope, summarize } from '../envelope';
import type { HandlerRegistry } from '../handlerRegistry';
import { type Batch, type BatchMessage, parseBatchMessage, readBatch, removeBatch } from './batch';
import { type ReconcilingHandler, reconcilePlan, targetColumns } from './plan';

/**
 * Turns one page of changes (batch.ts) into events: for each row and each handler that reconciles
 * its table, the change becomes an event only when it is newer than what that handler took on for
 * the record (storage/appliedChanges.ts): a deleted row that the handler did not see deleted, a
 * row changed after the newest `modifiedon` it applied, a row created since the previous link that
 * it never saw. The handlers one change is for get one event (Create, Update or Delete as the
 * change says; its Target holds their columns), written to the events queue like an accepted
 * webhook, so the ledger, failures, replay and telemetry treat it as one.
 *
 * What is read here is read again under the unit's claim when the event is processed (changeClaim.ts):
 * a delivered copy of the same change may still be on the queue, and only one of them runs.
 */

export interface FanOutDependencies {
  storage: Pick<StorageClients, 'payloads' | 'ledger' | 'eventsQueue'>;
  handlers: HandlerRegistry;
  log: EventLog;
  telemetry?: Telemetry;
  /** Rows worked on at once. */
  concurrency?: number;
  now?: () => number;
}

export interface FanOutReport {
  table: string;
  rows: number;
  /** Events queued, by message. */
  queued: Record<ReconcilableMessage, number>;
  /** Changes every handler had already applied. */
  covered: number;
}

export async function queueReconciledChanges(message: unknown, deps: FanOutDependencies): Promise<FanOutReport> {
  const batchMessage = parseBatchMessage(message);
  const report: FanOutReport = { table: batchMessage.table, rows: 0, queued: { Create: 0, Update: 0, Delete: 0 }, covered: 0 };
  const batch = await readBatch(deps.storage.payloads, batchMessage);
  // Consumed already (a second delivery of the message): its events were queued then.
  if (!batch) return report;
  const handlers = reconcilePlan(deps.handlers).find((plan) => plan.table === batchMessage.table.toLowerCase())?.handlers ?? [];
  const applied = new AppliedChanges(deps.storage.ledger);
  await forEachConcurrently(batch.rows, deps.concurrency ?? 16, async (raw) => {
    const row = changedRow({ primaryIdAttribute: batchMessage.primaryIdAttribute }, raw);
    if (!row) return;
    report.rows++;
    const events = await eventsFor(row, batch, handlers, applied);
    if (events.length === 0) report.covered++;
    for (const event of events) {
      await queueEvent(deps, batch, row, event);
      report.queued[event.message]++;
    }
  });
  await removeBatch(deps.storage.payloads, batchMessage).catch((error: unknown) =>
    deps.log.warn('Could not remove a consumed reconcile batch; the lifecycle rule will', { error: describeError(error) }),
  );
  emit(deps, report);
  return report;
}

interface PlannedEvent {
  message: ReconcilableMessage;
  handlers: ReconcilingHandler[];
}

/** The events one changed row makes: one per message, for the handlers that had not applied the change. */
async function eventsFor(
  row: ChangedRow,
  batch: Batch,
  handlers: readonly ReconcilingHandler[],
  applied: AppliedChanges,
): Promise<PlannedEvent[]> {
  const byMessage = new Map<ReconcilableMessage, ReconcilingHandler[]>();
  for (const handler of handlers) {
    const message = await missedMessage(row, batch.message, handler, applied);
    if (!message) continue;
    byMessage.set(message, [...(byMessage.get(message) ?? []), handler]);
  }
  return [...byMessage].map(([message, list]) => ({ message, handlers: list }));
}

/** What the handler missed of this row: the message to run it for, or null when it has it already (or does not take it). */
async function missedMessage(
  row: ChangedRow,
  batch: BatchMessage,
  handler: ReconcilingHandler,
  applied: AppliedChanges,
): Promise<ReconcilableMessage | null> {
  const takes = (message: ReconcilableMessage) => handler.messages.includes(message);
  if (row.kind === 'deleted') {
    if (!takes('Delete')) return null;
    return (await applied.ofRecord(handler.name, batch.table, row.id)).deleted ? null : 'Delete';
  }
  const modifiedOn = timeOf(row.row.modifiedon);
  const createdOn = timeOf(row.row.createdon);
  if (modifiedOn === null) return null;
  if (batch.since !== null && modifiedOn < batch.since) return null;
  if (!takes('Create') && !takes('Update')) return null;
  const record = await applied.ofRecord(handler.name, batch.table, row.id);
  const newest = newestApplied(record);
  if (record.deleted || (newest !== null && newest >= modifiedOn)) return null;
  const createdSince = createdOn !== null && batch.from !== null && createdOn >= Math.floor(batch.from / 1000) * 1000;
  if (createdSince && takes('Create') && !record.created && newest === null) return 'Create';
  const updatedAfterCreate = createdOn === null || modifiedOn > createdOn;
  return takes('Update') && (!createdSince || updatedAfterCreate) ? 'Update' : null;
}

function timeOf(value: unknown): number | null {
  const time = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(time) ? null : time;
}

/** Writes one reconciled event to the events queue, as the webhook function writes an accepted one. */
async function queueEvent(deps: FanOutDependencies, batch: Batch, row: ChangedRow, planned: PlannedEvent): Promise<void> {
  const values = row.kind === 'changed' ? row.row : null;
  const modifiedOn = values ? timeOf(values.modifiedon) : null;
  const columns: Map<string, ColumnKind> = targetColumns(planned.handlers, batch.columns, batch.message.primaryIdAttribute);
  const author = values ? (planned.message === 'Create' ? values._createdby_value : values._modifiedby_value) : null;
  const context = reconciledContext({
    table: batch.message.table,
    id: row.id,
    message: planned.message,
    changeKey: `${batch.message.table}|${row.id.toLowerCase()}|${planned.message}${planned.message === 'Update' ? `|${modifiedOn}` : ''}`,
    row: values,
    columns,
    changedOn: new Date(modifiedOn ?? (deps.now ?? Date.now)()),
    rowVersion: values ? rowVersionOf(values) : null,
    organizationId: batch.message.organizationId,
    userId: typeof author === 'string' ? author : batch.message.userId,
  });
  const body = JSON.stringify(context);
  // The same parser as every delivered event: what is queued is what a handler will see.
  const event = parseDataverseWebhookOrThrow({ body: Buffer.from(body, 'utf8'), headers: {} });
  const eventId = randomUUID();
  const envelope = (bodyOf: EventEnvelope['body']): EventEnvelope => ({
    v: ENVELOPE_VERSION,
    eventId,
    receivedAt: new Date((deps.now ?? Date.now)()).toISOString(),
    headers: {},
    truncated: false,
    summary: summarize(event),
    body: bodyOf,
    replays: 0,
    reconciled: { handlers: planned.handlers.map((handler) => handler.name) },
  });
  const inline = encodeQueueMessage(envelope({ inline: body }));
  if (fitsInQueueMessage(inline)) {
    await sendEncodedQueueMessage(deps.storage.eventsQueue, inline);
    return;
  }
  const reference = await putPayload(deps.storage.payloads, `${eventId}.json`, Buffer.from(body, 'utf8'));
  await sendEncodedQueueMessage(deps.storage.eventsQueue, encodeQueueMessage(envelope({ blob: reference })));
}

function emit(deps: FanOutDependencies, report: FanOutReport): void {
  const queued = report.queued.Create + report.queued.Update + report.queued.Delete;
  deps.log.info('Reconciled changes queued', { table: report.table, rows: report.rows, queued, covered: report.covered });
  (deps.telemetry ?? NO_TELEMETRY).event(
    'reconciled',
    { table: report.table },
    {
      rows: report.rows,
      queued,
      covered: report.covered,
      creates: report.queued.Create,
      updates: report.queued.Update,
      deletes: report.queued.Delete,
    },
  );
}
