import { benchParse } from './parse';

function main(): void {
  console.log('parse + normalize vs JSON.parse of the same bytes (medians of 21 alternating rounds)');
  for (const figure of benchParse()) {
    console.log(
      `  ${figure.payload.padEnd(32)} ${String(figure.bytes).padStart(7)} B  JSON.parse ${figure.jsonParseMicros.toFixed(1).padStart(8)} µs  parse ${figure.parseMicros.toFixed(1).padStart(8)} µs  ratio ${figure.ratio.toFixed(2)}×`,
    );
  }
}

main();
