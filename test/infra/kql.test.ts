import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { APPLICATION_INSIGHTS_TABLES } from './applicationInsightsSchema';

/**
 * Every query that deploys (infra/monitoring/**.kql, loaded by infra/modules/operations.bicep) and
 * every KQL block in the docs, parsed and analysed by Kusto's own language service
 * (@kusto/language-service-next, the Kusto.Language library compiled to JavaScript) against the
 * tables an Application Insights resource exposes (./applicationInsightsSchema.ts): a misspelt
 * table, column or function, or a type error, is a diagnostic here instead of a query that never
 * matches in Azure. Each alert's measure column must also be a column of its query's result.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface KustoList<T> {
  Count: number;
  getItem(index: number): T;
}
interface KustoDiagnostic {
  Severity: string;
  Code: string;
  Message: string;
  Start: number;
}
interface KustoAnalysis {
  GetDiagnostics(): KustoList<KustoDiagnostic>;
  ResultType: { Columns?: KustoList<{ Name: string }> } | null;
}
interface KustoLanguage {
  GlobalState: { Default: { WithDatabase(database: unknown): unknown } };
  KustoCode: { ParseAndAnalyze(text: string, globals: unknown): KustoAnalysis };
  Symbols: {
    TableSymbol: { From(schema: string): { WithName(name: string): unknown } };
    DatabaseSymbol: { $ctor1: new (name: string, members: unknown[], isOpen: boolean) => unknown };
  };
}

// The package is the Bridge.NET runtime and the library, each a script that defines globals.
const load = createRequire(__filename);
load('@kusto/language-service-next/bridge.min.js');
load('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
const Kusto = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;

const tables = Object.entries(APPLICATION_INSIGHTS_TABLES).map(([name, columns]) =>
  Kusto.Symbols.TableSymbol.From(
    `(${Object.entries(columns)
      .map(([column, type]) => `${column}:${type}`)
      .join(', ')})`,
  ).WithName(name),
);
const applicationInsights = Kusto.GlobalState.Default.WithDatabase(
  new Kusto.Symbols.DatabaseSymbol.$ctor1('applicationInsights', tables, false),
);

function analyse(query: string): { errors: string[]; resultColumns: string[] } {
  const analysis = Kusto.KustoCode.ParseAndAnalyze(query, applicationInsights);
  const diagnostics = analysis.GetDiagnostics();
  const errors: string[] = [];
  for (let index = 0; index < diagnostics.Count; index += 1) {
    const diagnostic = diagnostics.getItem(index);
    errors.push(`${diagnostic.Severity} ${diagnostic.Code} at ${diagnostic.Start}: ${diagnostic.Message}`);
  }
  const columns = analysis.ResultType?.Columns;
  const resultColumns: string[] = [];
  for (let index = 0; index < (columns?.Count ?? 0); index += 1) resultColumns.push(columns!.getItem(index).Name);
  return { errors, resultColumns };
}

const kqlFiles = (folder: string): string[] =>
  readdirSync(path.join(ROOT, folder), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? kqlFiles(`${folder}/${entry.name}`) : entry.name.endsWith('.kql') ? [`${folder}/${entry.name}`] : [],
  );
const QUERY_FILES = kqlFiles('infra/monitoring');
const DOC_QUERIES = readdirSync(path.join(ROOT, 'docs'))
  .filter((file) => file.endsWith('.md'))
  .flatMap((file) =>
    [...read(`docs/${file}`).matchAll(/```(?:kusto|kql)\n([\s\S]*?)```/g)].map((match, index) => ({
      where: `docs/${file} #${index + 1}`,
      query: match[1]!,
    })),
  );

describe('the KQL that deploys, against the Application Insights schema', () => {
  it('finds the queries', () => {
    expect(QUERY_FILES.length).toBeGreaterThanOrEqual(14);
    expect(DOC_QUERIES.length).toBeGreaterThanOrEqual(5);
  });

  for (const file of QUERY_FILES) {
    it(`${file} has no diagnostic`, () => {
      expect(analyse(read(file)).errors).toEqual([]);
    });
  }

  for (const { where, query } of DOC_QUERIES) {
    it(`the query in ${where} has no diagnostic`, () => {
      // The docs' placeholder ("<eventId | …>") is a string: it parses as it is.
      expect(analyse(query).errors).toEqual([]);
    });
  }

  it('each alert’s measure column is a column of what its query returns', () => {
    const operations = read('infra/modules/operations.bicep');
    const alerts = [
      ...operations.matchAll(/query: loadTextContent\('\.\.\/monitoring\/alerts\/([^']+)'\)[\s\S]*?metricMeasureColumn: '([^']*)'/g),
    ];
    expect(alerts.length).toBe(kqlFiles('infra/monitoring/alerts').length);
    for (const [, file, column] of alerts) {
      if (!column) continue;
      expect(analyse(read(`infra/monitoring/alerts/${file}`)).resultColumns, file).toContain(column);
    }
  });

  it('catches a misspelt column, table or function (the check can fail)', () => {
    const query = read('infra/monitoring/alerts/queue-age.kql');
    expect(analyse(query).errors).toEqual([]);
    expect(analyse(query.replace('customDimensions.queue', 'customDimension.queue')).errors.join('\n')).toMatch(/customDimension/);
    expect(analyse(query.replace('valueMax', 'valueMaximum')).errors.join('\n')).toMatch(/valueMaximum/);
    expect(analyse(query.replace('customMetrics', 'customMetric')).errors.join('\n')).toMatch(/customMetric/);
    expect(analyse(query.replace('max(valueMax)', 'maxx(valueMax)')).errors.join('\n')).toMatch(/maxx/);
    // A column of another table: `duration` is a requests column, not a customMetrics one.
    expect(analyse(query.replace('max(valueMax)', 'max(duration)')).errors.join('\n')).toMatch(/duration/);
  });
});
