import { createDataverseClient, WEB_API_VERSION } from '../src/dataverseApi';
import { readTableMetadata, type TableMetadata } from '../src/dataverseApi/tableMetadata';
import { tableSpec } from '../src/tableTypes/fromMetadata';
import { renderModule } from '../src/tableTypes/render';
// The Web API stand-in of the tests, with contact's 300+ columns from published sources.
import { startFakeDataverse } from '../test/support/fakeDataverse';
import { median, millis } from './stats';

export interface TableTypesFigure {
  table: string;
  columns: number;
  typedColumns: number;
  moduleBytes: number;
  /** The six requests `types` sends for a table, fetched and parsed as JSON, nothing else. */
  requestsMillis: number;
  /** What `types` does for a table: the same requests, the column rules and the module text. */
  generateMillis: number;
  ratio: number;
  /** The column rules and the module text alone, from metadata already read. */
  renderMillis: number;
}

/** `dataverse-webhooks types --tables contact` against the stand-in on loopback, vs the bare requests. */
export async function benchTableTypes(rounds = 15): Promise<TableTypesFigure[]> {
  const dataverse = await startFakeDataverse();
  try {
    const tokens = { getToken: async () => dataverse.token };
    const client = createDataverseClient(dataverse.url, { tokens });
    const figures: TableTypesFigure[] = [];
    for (const table of ['contact', 'account']) {
      const generate = async () => {
        const metadata = await readTableMetadata(client, table);
        return renderModule(
          { [table]: tableSpec(metadata) },
          { organization: dataverse.url, tables: [table], tablesModule: '../dataverse/tables', webApiVersion: WEB_API_VERSION },
        );
      };
      // The same URLs the reader asks for, taken from the stand-in's log of one run.
      dataverse.reset();
      const text = await generate();
      const urls = dataverse.requests.map((request) => `${dataverse.url}/api/data/v9.2/${request.path}`);
      const headers = {
        Authorization: `Bearer ${dataverse.token}`,
        Accept: 'application/json',
        'OData-MaxVersion': '4.0',
        'OData-Version': '4.0',
      };
      const bare = () => Promise.all(urls.map(async (url) => (await fetch(url, { headers })).json()));
      const metadata: TableMetadata = await readTableMetadata(client, table);

      const base: number[] = [];
      const cand: number[] = [];
      const render: number[] = [];
      const ratios: number[] = [];
      for (let round = 0; round < rounds + 3; round++) {
        const b = await millis(bare);
        const c = await millis(generate);
        const r = await millis(() =>
          renderModule(
            { [table]: tableSpec(metadata) },
            { organization: dataverse.url, tables: [table], tablesModule: '../dataverse/tables', webApiVersion: WEB_API_VERSION },
          ),
        );
        if (round < 3) continue; // warm-up
        base.push(b);
        cand.push(c);
        render.push(r);
        ratios.push(c / b);
      }
      figures.push({
        table,
        columns: metadata.attributes.length,
        typedColumns: Object.keys(tableSpec(metadata).columns).length,
        moduleBytes: Buffer.byteLength(text),
        requestsMillis: median(base),
        generateMillis: median(cand),
        ratio: median(ratios),
        renderMillis: median(render),
      });
    }
    return figures;
  } finally {
    await dataverse.close();
  }
}
