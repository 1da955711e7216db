import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach } from 'vitest';
import { asFunctionInput, runUntilIdle } from '../../devhost/queueListener';
import {
  dataContractDate,
  type RawJson,
  rawEntity,
  rawEntityReference,
  rawExecutionContext,
  rawOptionSetValue,
} from '../../src/dataverse/samplePayloads';
import { createDataverseClient } from '../../src/dataverseApi';
import { silentLog } from '../../src/observability/log';
import type { Telemetry } from '../../src/observability/telemetry';
import { acceptWebhook } from '../../src/pipeline/accept';
import type { HandlerRegistry } from '../../src/pipeline/handlerRegistry';
import { type FanOutReport, queueReconciledChanges } from '../../src/pipeline/reconcile/fanOut';
import { type ReconcileDependencies, type ReconcileReport, type ReconcileRequest, reconcileNow } from '../../src/pipeline/reconcile/run';
import { readIngestSettings } from '../../src/settings';
import type { StorageClients } from '../../src/storage/clients';
import type { WebApiRow } from './fakeChangeTracking';
import { type FakeDataverse, startFakeDataverse } from './fakeDataverse';
import { accountOf, processor, TEST_QUEUES } from './processing';
import { dataverseHeaders, FUNCTION_URL } from './requests';
import { isolatedStorage } from './storage';
import { scopedTokens } from './tokens';

/**
 * A small world for reconciliation tests: the Dataverse stand-in with change tracking, the app's
 * storage on Azurite, and "Dataverse" posting a webhook for each change it makes, as a registered
 * asynchronous PostOperation step would: the Target holds the columns the change set plus
 * `modifiedon` and `modifiedby` (`createdon`, `createdby` and the id too on a Create), RowVersion
 * null, as in the real captures (samples/: only one of them carries a RowVersion); a Delete's
 * Target is an EntityReference. When the app answers 502, 503 or 504, Dataverse makes one more
 * attempt and gives up ("The WebHook service will make one more attempt only when these error
 * codes are returned", use-webhooks, Troubleshoot WebHook registrations): the change is missed.
 */

export type TableName = 'account' | 'contact';

export interface PostedChange {
  table: TableName;
  id: string;
  message: 'Create' | 'Update' | 'Delete';
  /** The row's modifiedon after the change, epoch ms; null for a Delete. */
  modifiedOn: number | null;
  /** The app took it (2xx), or Dataverse gave up after its retry. */
  delivered: boolean;
  /** What Dataverse posted. */
  body: string;
}

/** The columns the tests write, and their DataContract types in a webhook. */
const CHOICE_COLUMNS = new Set(['statecode']);

/** The columns a Web API write set, as a webhook's Target carries them (annotations left out). */
function contractAttributes(values: WebApiRow): Record<string, RawJson> {
  return Object.fromEntries(
    Object.entries(values)
      .filter(([name]) => !name.includes('@'))
      .map(([name, value]) => contractValue(name, value, values)),
  );
}

function contractValue(name: string, value: unknown, row: WebApiRow): [string, RawJson] {
  if (name.startsWith('_') && name.endsWith('_value')) {
    const column = name.slice(1, -'_value'.length);
    const target = String(row[`${name}@Microsoft.Dynamics.CRM.lookuplogicalname`] ?? 'account');
    return [column, value === null ? null : rawEntityReference(target, String(value))];
  }
  if (CHOICE_COLUMNS.has(name)) return [name, value === null ? null : rawOptionSetValue(Number(value))];
  return [name, value as RawJson];
}

const SYSTEM_USER = 'systemuser';

/**
 * A world of its own for each test of the enclosing describe block: a fresh Dataverse stand-in
 * tracking `tables` (its clock at `clock`, when given), on storage of its own; the stand-in is
 * closed after the test. Call it where beforeEach would go; the function it returns gives the
 * current test's world.
 */
export function useReconcileWorld(tables: readonly TableName[], clock?: number): () => ReconcileWorld {
  let world: ReconcileWorld | undefined;
  beforeEach(async () => {
    world = new ReconcileWorld(await startFakeDataverse(), await isolatedStorage());
    for (const table of tables) world.tracking.table(table);
    if (clock !== undefined) world.tracking.clock = () => clock;
  });
  afterEach(async () => {
    await world?.fake.close();
    world = undefined;
  });
  return () => {
    if (!world) throw new Error('useReconcileWorld(): the world is made in beforeEach; use it inside a test or a hook');
    return world;
  };
}

export class ReconcileWorld {
  readonly posted: PostedChange[] = [];
  /** While false, the app's webhook answers 503 (a bad deploy, an expired key, an outage). */
  appUp = true;
  readonly steps = { Create: randomUUID(), Update: randomUUID(), Delete: randomUUID() };

  constructor(
    readonly fake: FakeDataverse,
    readonly storage: StorageClients,
  ) {}

  get tracking() {
    return this.fake.changeTracking;
  }

  /** Moves the stand-in's clock: Dataverse keeps modifiedon to the second. */
  tick(seconds = 1): void {
    const at = this.tracking.clock() + seconds * 1000;
    this.tracking.clock = () => at;
  }

  async create(table: TableName, values: WebApiRow): Promise<string> {
    const id = this.tracking.create(table, values);
    const row = this.tracking.row(table, id)!;
    const attributes = contractAttributes(values);
    Object.assign(attributes, {
      [`${table}id`]: id,
      createdon: dataContractDate(new Date(String(row.createdon))),
      modifiedon: dataContractDate(new Date(String(row.modifiedon))),
      createdby: rawEntityReference(SYSTEM_USER, String(row._createdby_value)),
      modifiedby: rawEntityReference(SYSTEM_USER, String(row._modifiedby_value)),
    });
    await this.post(table, id, 'Create', rawEntity(table, id, attributes), Date.parse(String(row.modifiedon)));
    return id;
  }

  async update(table: TableName, id: string, values: WebApiRow): Promise<void> {
    this.tracking.update(table, id, values);
    const row = this.tracking.row(table, id)!;
    const attributes = contractAttributes(values);
    Object.assign(attributes, {
      [`${table}id`]: id,
      modifiedon: dataContractDate(new Date(String(row.modifiedon))),
      modifiedby: rawEntityReference(SYSTEM_USER, String(row._modifiedby_value)),
    });
    await this.post(table, id, 'Update', rawEntity(table, id, attributes), Date.parse(String(row.modifiedon)));
  }

  async delete(table: TableName, id: string): Promise<void> {
    this.tracking.delete(table, id);
    await this.post(table, id, 'Delete', rawEntityReference(table, id), null);
  }

  private async post(table: TableName, id: string, message: PostedChange['message'], target: RawJson, modifiedOn: number | null) {
    const context = rawExecutionContext({
      messageName: message,
      entityName: table,
      entityId: id,
      stage: 40,
      mode: 1,
      inputParameters: { Target: target },
      outputParameters: message === 'Create' ? { id } : {},
      operationCreatedOn: new Date(this.tracking.clock()),
      owningExtensionId: this.steps[message],
    });
    const body = JSON.stringify(context);
    let status = await this.send(body);
    if (status === 502 || status === 503 || status === 504) status = await this.send(body);
    this.posted.push({ table, id, message, modifiedOn, delivered: status >= 200 && status < 300, body });
  }

  /** The same context posted again, as when someone resumes a failed System Job by hand; returns the status. */
  async repost(change: PostedChange): Promise<number> {
    return this.send(change.body);
  }

  private async send(body: string): Promise<number> {
    if (!this.appUp) return 503;
    const result = await acceptWebhook(
      { method: 'POST', url: `${FUNCTION_URL}?code=k`, headers: new Headers(dataverseHeaders()), body: async () => Buffer.from(body) },
      { settings: readIngestSettings({}), storage: this.storage, log: silentLog },
    );
    return result.response.status;
  }

  client() {
    return createDataverseClient(this.fake.url, {
      tokens: scopedTokens({ [`${this.fake.url}/.default`]: this.fake.token }),
      sleep: async () => undefined,
    });
  }

  /** One reconcile run, as the timer (or the CLI, with force) starts it. */
  reconcile(
    handlers: HandlerRegistry,
    request: ReconcileRequest = {},
    more: Partial<Pick<ReconcileDependencies, 'holder' | 'telemetry' | 'maxPageSize' | 'deadline' | 'log' | 'settings'>> = {},
  ): Promise<ReconcileReport> {
    return reconcileNow(
      {
        storage: this.storage,
        client: this.client(),
        handlers,
        settings: { intervalMs: 15 * 60_000, leaseMs: 60_000 },
        log: silentLog,
        deadline: Date.now() + 60_000,
        ...more,
      },
      { force: true, ...request },
    );
  }

  /** Turns the queued pages of changes into events, as queueReconciledChanges does, until the reconcile queue is idle. */
  async fanOut(handlers: HandlerRegistry, telemetry?: Telemetry): Promise<FanOutReport[]> {
    const reports: FanOutReport[] = [];
    await runUntilIdle({
      queueService: accountOf(this.storage.reconcileQueue),
      queueName: this.storage.names.reconcileQueue,
      queues: TEST_QUEUES,
      idleMs: 300,
      run: async ({ body }) => {
        reports.push(
          await queueReconciledChanges(asFunctionInput(body), {
            storage: this.storage,
            handlers,
            log: silentLog,
            ...(telemetry ? { telemetry } : {}),
          }),
        );
      },
    });
    return reports;
  }

  /** Processes the events queue (delivered and reconciled events alike) until it is idle. */
  async process(handlers: HandlerRegistry) {
    return processor(this.storage, handlers).drain();
  }
}
