import { randomBytes, randomUUID } from 'node:crypto';
import { startAzurite } from '../devhost/azurite';
import { createDataverseClient, type DataverseClient } from '../src/dataverseApi';
import { changePages, readTrackedTable } from '../src/dataverseApi/changeTracking';
import { on } from '../src/handlerApi';
import { registryOf } from '../src/handlerApi/load';
import { silentLog } from '../src/observability/log';
import { queueReconciledChanges } from '../src/pipeline/reconcile/fanOut';
import { reconcilePlan, runColumns, selectOf } from '../src/pipeline/reconcile/plan';
import { reconcileNow } from '../src/pipeline/reconcile/run';
import { createStorageClients, ensureStorageResources, type StorageClients } from '../src/storage/clients';
import { decodeQueueMessage } from '../src/storage/queueMessages';
import { ReconcileState } from '../src/storage/reconcileState';
import { startFakeDataverse } from '../test/support/fakeDataverse';
import { median, millis } from './stats';

/**
 * Reconciliation: one run over 10,000 changed rows of a table (the changes since its token, in
 * pages of 5000, Dataverse's most) against the Web API stand-in answering the same pages alone (the
 * same requests, read and parsed, nothing done with them), alternating, medians of 7 rounds. The
 * run also reads the table's definition and WhoAmI, takes and renews its lease, keeps each page in
 * Blob storage with a message on the reconcile queue, and saves its position after each page; the
 * work per row (what each handler applied, the events) is the queue function's, measured apart as
 * rows per second.
 *
 * Run on its own: `npm run build && tsc -p bench && node dist/bench/reconcile.js [rows]`.
 */

export interface ReconcileFigure {
  rows: number;
  pages: number;
  pagesAloneMs: number;
  reconcileMs: number;
  /** The median of the rounds' reconcile / pages alone: the goal is ≤ 1.3. */
  ratio: number;
  /** The queue function turning those pages into events (one per row here: none was applied), rows/s. */
  fanOutRowsPerSecond: number;
}

const COLUMNS = [
  'name',
  'accountnumber',
  'telephone1',
  'emailaddress1',
  'address1_city',
  'revenue',
  'statecode',
  'primarycontactid',
] as const;

function handlers() {
  return registryOf([
    on({ name: 'account-sync', entity: 'account', message: ['Create', 'Update'], reconcile: { columns: COLUMNS } }, () => undefined),
  ]);
}

async function pagesAlone(client: DataverseClient, token: string): Promise<number> {
  const table = await readTrackedTable(client, 'account');
  const plan = reconcilePlan(handlers())[0]!;
  let rows = 0;
  for await (const page of changePages(client, table, { kind: 'delta', select: selectOf(runColumns(plan, table)), token }))
    rows += page.rows.length;
  return rows;
}

function storageOn(connectionString: string): StorageClients {
  const suffix = randomBytes(4).toString('hex');
  return createStorageClients(connectionString, {
    names: {
      eventsQueue: `events-${suffix}`,
      payloadContainer: `payloads-${suffix}`,
      ledgerTable: `Ledger${suffix}`,
      reconcileTable: `Reconcile${suffix}`,
      reconcileQueue: `reconcile-${suffix}`,
    },
  });
}

async function fanOutAll(storage: StorageClients): Promise<{ rows: number; ms: number }> {
  let rows = 0;
  const ms = await millis(async () => {
    for (;;) {
      const received = await storage.reconcileQueue.receiveMessages({ numberOfMessages: 32 });
      if (received.receivedMessageItems.length === 0) return;
      for (const item of received.receivedMessageItems) {
        const report = await queueReconciledChanges(decodeQueueMessage(item.messageText), {
          storage,
          handlers: handlers(),
          log: silentLog,
          concurrency: 32,
        });
        rows += report.rows;
        await storage.reconcileQueue.deleteMessage(item.messageId, item.popReceipt);
      }
    }
  });
  return { rows, ms };
}

export async function benchReconcile(rows = 10_000, rounds = 7): Promise<ReconcileFigure> {
  const [azurite, fake] = await Promise.all([startAzurite(), startFakeDataverse()]);
  try {
    fake.changeTracking.table('account');
    const client = createDataverseClient(fake.url, { tokens: { getToken: async () => fake.token } });
    const contact = randomUUID();
    const ids = Array.from({ length: rows }, (_, i) =>
      fake.changeTracking.create('account', {
        name: `Contoso ${i}`,
        accountnumber: `ACC-${i}`,
        telephone1: '+1 425 555 0100',
        emailaddress1: `contact${i}@contoso.example`,
        address1_city: 'Redmond',
        revenue: 1_250_000 + i,
        statecode: 0,
        _primarycontactid_value: contact,
        '_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'contact',
      }),
    );
    // The token before the changes, then a change to every row: the delta holds all of them.
    const first = storageOn(azurite.connectionString);
    await ensureStorageResources(first);
    const settings = { intervalMs: 15 * 60_000, leaseMs: 60_000 };
    await reconcileNow({ storage: first, client, handlers: handlers(), settings, log: silentLog, deadline: Infinity }, { force: true });
    const token = (await new ReconcileState(first.reconcile).position('account')).deltaToken!;
    for (const id of ids) fake.changeTracking.update('account', id, { name: `Renamed ${id.slice(0, 8)}` });

    const alone: number[] = [];
    const reconciled: number[] = [];
    let pages = 0;
    let last: StorageClients = first;
    for (let round = 0; round < rounds; round++) {
      let counted = 0;
      alone.push(await millis(async () => (counted = await pagesAlone(client, token))));
      if (counted !== rows) throw new Error(`the stand-in answered ${counted} of ${rows} changed rows`);
      const storage = storageOn(azurite.connectionString);
      await ensureStorageResources(storage);
      await new ReconcileState(storage.reconcile).savePosition({
        ...(await new ReconcileState(first.reconcile).position('account')),
        deltaToken: token,
      });
      reconciled.push(
        await millis(async () => {
          const report = await reconcileNow(
            { storage, client, handlers: handlers(), settings, log: silentLog, deadline: Infinity },
            { force: true },
          );
          if (report.status !== 'ran' || report.tables[0]?.changed !== rows) throw new Error(`the run found ${JSON.stringify(report)}`);
          pages = report.tables[0].pages;
        }),
      );
      last = storage;
    }
    const fanOut = await fanOutAll(last);
    return {
      rows,
      pages,
      pagesAloneMs: median(alone),
      reconcileMs: median(reconciled),
      // The median of each round's ratio: the two halves of a round ran side by side, on the same load.
      ratio: median(reconciled.map((ms, round) => ms / alone[round]!)),
      fanOutRowsPerSecond: fanOut.rows / (fanOut.ms / 1000),
    };
  } finally {
    await Promise.all([azurite.stop(), fake.close()]);
  }
}

export function reconcileLine(f: ReconcileFigure): string {
  return `  ${String(f.rows).padStart(6)} changed rows in ${f.pages} pages  pages alone ${f.pagesAloneMs.toFixed(0).padStart(5)} ms  reconcile run ${f.reconcileMs.toFixed(0).padStart(5)} ms  ratio ${f.ratio.toFixed(2)}×  (then the queue function: ${f.fanOutRowsPerSecond.toFixed(0)} rows/s into events)`;
}

if (require.main === module) {
  void benchReconcile(Number(process.argv[2] ?? 10_000)).then((f) => console.log(reconcileLine(f)));
}
