import { benchAck, benchDecisionAck } from './ack';
import { benchParse } from './parse';
import { benchProcess } from './process';
import { benchTableTypes } from './tableTypes';

async function main(): Promise<void> {
  console.log('parse + normalize vs JSON.parse of the same bytes (medians of 21 alternating rounds)');
  for (const figure of benchParse()) {
    console.log(
      `  ${figure.payload.padEnd(32)} ${String(figure.bytes).padStart(7)} B  JSON.parse ${figure.jsonParseMicros.toFixed(1).padStart(8)} µs  parse ${figure.parseMicros.toFixed(1).padStart(8)} µs  ratio ${figure.ratio.toFixed(2)}×`,
    );
  }

  console.log('\nack path (request → checks → parse → enqueue → 202) vs a bare handler that only stores the raw body, Azurite on loopback');
  for (const f of await benchAck()) {
    console.log(
      `  ${f.payload.padEnd(32)} ${String(f.bytes).padStart(7)} B  bare p50 ${f.bareP50.toFixed(2)} ms p99 ${f.bareP99.toFixed(2)} ms  ack p50 ${f.ackP50.toFixed(2)} ms p99 ${f.ackP99.toFixed(2)} ms  p50 ratio ${f.p50Ratio.toFixed(2)}×`,
    );
  }

  console.log('\nack path of a synchronous step with an allowing no-op inline handler (ledger claim, decision written beside the enqueue) vs the same path with none, alternating, Azurite on loopback');
  {
    const f = await benchDecisionAck();
    console.log(
      `  ${f.payload.padEnd(32)} ${String(f.rounds).padStart(4)} rounds  plain p50 ${f.plainP50.toFixed(2)} ms p99 ${f.plainP99.toFixed(2)} ms  inline p50 ${f.inlineP50.toFixed(2)} ms p99 ${f.inlineP99.toFixed(2)} ms  ratio p50 ${f.p50Ratio.toFixed(2)}× p99 ${f.p99Ratio.toFixed(2)}×`,
    );
  }

  console.log('\nprocessing: events/s from a pre-filled queue through dedupe to a no-op handler vs Azurite alone doing the same reads and deletes (medians of 3 rounds)');
  for (const f of await benchProcess()) {
    console.log(
      `  ${f.payload.padEnd(32)} ${String(f.events).padStart(4)} events  Azurite alone ${f.azuriteAlonePerSecond.toFixed(0).padStart(5)}/s  processed ${f.processedPerSecond.toFixed(0).padStart(5)}/s  ratio ${f.ratio.toFixed(2)}×`,
    );
  }
}

async function tableTypes(): Promise<void> {
  console.log('\ntypes: one table\'s module from the Web API stand-in on loopback vs the same six requests alone (medians of 15 alternating rounds)');
  for (const f of await benchTableTypes()) {
    console.log(
      `  ${f.table.padEnd(10)} ${String(f.columns).padStart(4)} columns (${f.typedColumns} typed)  module ${String(f.moduleBytes).padStart(6)} B  requests ${f.requestsMillis.toFixed(1).padStart(6)} ms  types ${f.generateMillis.toFixed(1).padStart(6)} ms  ratio ${f.ratio.toFixed(2)}×  (rules + text alone ${f.renderMillis.toFixed(2)} ms)`,
    );
  }
}

main().then(tableTypes).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
