'use strict';
// Run as `node --expose-gc parseCost.cjs <dist dir> <bytes> <shape>…` by test/dataverse/boundedWork.test.ts:
// builds each hostile body of about <bytes>, parses it once with the built parser, and prints one
// JSON line per shape: its size, the verdict, the CPU time of the parse (process.cpuUsage: this
// process's own time, whatever else the machine runs) and the most heap in use at any moment of
// it above what was in use before (the largest of the used sizes V8 saw before each collection
// during the parse, and at its end: v8.GCProfiler). A process of its own: nothing else allocates.
const path = require('node:path');
const v8 = require('node:v8');

const [dist, bytesArgument, ...shapes] = process.argv.slice(2);
const { parseDataverseWebhook } = require(path.join(dist, 'src', 'dataverse'));
// A build from before the structure limit existed is measured on the same bodies.
const { MAX_STRUCTURE = 256 * 1024 } = require(path.join(dist, 'src', 'dataverse', 'parseWebhook'));
const { rawExecutionContext } = require(path.join(dist, 'src', 'dataverse', 'samplePayloads'));
const target = Number(bytesArgument);
const CONTRACTS = 'http://schemas.microsoft.com/xrm/2011/Contracts';

/** A real context whose one input parameter is `value` (JSON text). */
function contextWith(value) {
  const context = JSON.stringify(rawExecutionContext({ messageName: 'Update', entityName: 'account', inputParameters: { Value: 0 } }));
  return context.replace('"value":0', `"value":${value}`);
}

/** As many `item`s as fit in the target size, in one array, inside a context. */
function repeated(item, open = '[', close = ']', wrap = (array) => array) {
  const room = target - contextWith(wrap(`${open}${close}`)).length;
  const count = Math.floor(room / (item.length + 1));
  return contextWith(wrap(`${open}${new Array(count).fill(item).join(',')}${close}`));
}

/**
 * As many `item`s as the structure limit lets through (in one array, wrapped), then a string that
 * fills the body to its size.
 */
function atTheLimit(item, structurePerItem, wrap = (array) => array) {
  const count = Math.floor((MAX_STRUCTURE - 200) / structurePerItem);
  const items = wrap(`[${new Array(count).fill(item).join(',')}]`);
  const room = target - contextWith(`[${items},""]`).length;
  return contextWith(`[${items},"${'x'.repeat(room)}"]`);
}

const columnSet = (columns) => `{"__type":"ColumnSet:${CONTRACTS}","AllColumns":false,"Columns":${columns}}`;

const SHAPES = {
  // The body: a ColumnSet of two million column names that are not strings.
  'malformed-columns': () => repeated('0', '[', ']', columnSet),
  'malformed-columns-at-the-limit': () => atTheLimit('0', 1, columnSet),
  'malformed-related-entities': () =>
    repeated(
      '0',
      '[',
      ']',
      (related) => `{"__type":"Entity:${CONTRACTS}","LogicalName":"account","Attributes":[],"RelatedEntities":${related}}`,
    ),
  'empty-objects': () => repeated('{}'),
  'empty-arrays': () => repeated('[]'),
  numbers: () => repeated('0'),
  'nested-arrays': () => {
    const depth = Math.floor((target - contextWith('0').length) / 2);
    return contextWith(`${'['.repeat(depth)}${']'.repeat(depth)}`);
  },
  members: () => {
    const names = [];
    for (let i = 0, size = contextWith('{}').length; size < target - 16; i++) {
      names.push(`"m${i}":0`);
      size += names[i].length + 1;
    }
    return contextWith(`{${names.join(',')}}`);
  },
  'entities-at-the-limit': () => atTheLimit('{"LogicalName":"a","Attributes":[]}', 6),
  'empty-objects-at-the-limit': () => atTheLimit('{}', 2),
};

for (const shape of shapes) {
  const body = Buffer.from(SHAPES[shape]());
  global.gc();
  const before = process.memoryUsage().heapUsed;
  const profiler = new v8.GCProfiler();
  profiler.start();
  const cpu = process.cpuUsage();
  const result = parseDataverseWebhook({ body, headers: {} });
  const used = process.cpuUsage(cpu);
  const after = process.memoryUsage().heapUsed;
  let peak = after;
  for (const collection of profiler.stop().statistics) peak = Math.max(peak, collection.beforeGC.heapStatistics.usedHeapSize);
  process.stdout.write(
    `${JSON.stringify({
      shape,
      bytes: body.length,
      verdict: result.ok ? 'parsed' : result.error.kind,
      issues: result.ok ? 0 : result.error.issues.length,
      cpuMs: (used.user + used.system) / 1000,
      peakHeapBytes: peak - before,
    })}\n`,
  );
}
