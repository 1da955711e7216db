// `npm test`: each phase in turn, one short line as it starts and one as it ends, so that the minute
// of lint, type-check and build before the first test is not silent. npm's own banners are left
// out (--silent); each tool's output is shown as it comes. Stops at the first phase that fails,
// with its exit code.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const PHASES = [
  ['lint', 'Biome and the layer rules'],
  ['typecheck', 'the app, the dev host, the bench and the tests'],
  ['build', 'dist/'],
  ['vitest', 'every test'],
];

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const started = Date.now();
for (const [index, [phase, what]] of PHASES.entries()) {
  const step = `[${index + 1}/${PHASES.length}] ${phase}`;
  console.log(`${step}: ${what}…`);
  const phaseStarted = Date.now();
  // vitest runs as `vitest run` would from the script (npm test -- <files> passes files on).
  const [command, args] =
    phase === 'vitest'
      ? [process.execPath, [path.join(__dirname, '..', 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...process.argv.slice(2)]]
      : [npm, ['run', '--silent', phase]];
  const { status, signal } = spawnSync(command, args, { stdio: 'inherit', shell: command === npm && process.platform === 'win32' });
  const seconds = ((Date.now() - phaseStarted) / 1000).toFixed(0);
  if (status !== 0) {
    console.log(`${step} failed after ${seconds} s${signal ? ` (${signal})` : ''}`);
    process.exit(status ?? 1);
  }
  console.log(`${step} passed in ${seconds} s`);
}
console.log(`npm test passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
