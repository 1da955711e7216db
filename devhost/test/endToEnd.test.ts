import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../test/support/fixtures';
import { useTempDirs } from '../../test/support/tempDirs';
import { FUNC_MISSING_NOTICE, isListening } from '../start';
import { cliProcess, eventually, isRunning, startLocalDevLoop } from './devHost';

/**
 * What a user does on a machine without func: npm start (its dev loop, built, in a process of its
 * own, on free ports, with a fresh in-memory Azurite), then the CLI as `npx dataverse-webhooks`
 * runs it: send a real payload over HTTP, see the test's handler's line, list failures, poison an
 * event, replay it, and Ctrl-C. The compiler is replaced by an idle stand-in, so that this test
 * never rewrites dist/ under the other tests; the reload it triggers is tested in start.test.ts.
 *
 * The failing handler is not in the app: devhost/test/apps/e2eFailingHandler.cjs is loaded by the
 * local host after the app's entry points (hostProcess.js --entry-point), and fails while a flag
 * file exists.
 */

const REPO = path.resolve(__dirname, '..', '..');
const FAILING_HANDLER = path.join(__dirname, 'apps', 'e2eFailingHandler.cjs');
const tempDir = useTempDirs();

describe('npm start on a machine without func, end to end over HTTP', () => {
  it('serves the webhook, runs the handlers, poisons, replays, and stops everything on Ctrl-C', async () => {
    const files = tempDir('end-to-end-');
    const flag = path.join(files, 'fail');
    const workerPidFile = path.join(files, 'worker.pid');
    // The compiler's stand-in says which process it is, to show that Ctrl-C stops it.
    const idle = path.join(files, 'idle-compiler.cjs');
    const compilerPidFile = path.join(files, 'compiler.pid');
    writeFileSync(
      idle,
      `require('node:fs').writeFileSync(${JSON.stringify(compilerPidFile)}, String(process.pid));\nsetInterval(() => {}, 1000);\n`,
    );
    const { loop, ports, httpPort, hostPid, url, storageEnv } = await startLocalDevLoop({
      projectRoot: REPO,
      watch: { command: process.execPath, args: [idle] },
      localHostArgs: ['--entry-point', FAILING_HANDLER],
      env: {
        E2E_FAIL_FLAG: flag,
        E2E_WORKER_PID_FILE: workerPidFile,
        // host.json, overridden the way the host allows: two attempts, no wait between them.
        AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '2',
        AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:00',
      },
    });
    expect(loop.output()).toContain(FUNC_MISSING_NOTICE);
    const workerPid = Number(readFileSync(workerPidFile, 'utf8'));
    const env = { PATH: process.env['PATH'], ...storageEnv, APPLICATIONINSIGHTS_CONNECTION_STRING: '' };

    // A real captured payload, as Dataverse sends it.
    const sent = await cliProcess(
      ['send', path.join(SAMPLES_DIR, '06-account-create-sync-postop-webhooksite-unicode.json'), '--url', url],
      env,
    );
    expect(sent, sent.stderr).toMatchObject({ code: 0 });
    const eventId = /^202 Accepted\s+eventId (\S+)/.exec(sent.stdout)?.[1];
    expect(eventId, sent.stdout).toBeTruthy();
    await loop.waitFor(new RegExp(`\\[processDataverseEvent [0-9a-f]{8}\\] e2e saw the event eventId=${eventId}`), 'the test’s handler');

    expect(await cliProcess(['failures'], env)).toMatchObject({ code: 0, stdout: '', stderr: 'No poisoned events.\n' });

    // A synchronous PreValidation step, decided inside the request by the test's inline handler:
    // refused above its maximum (a 422 Dataverse does not retry), allowed below it.
    const tooHigh = await cliProcess(
      ['send', '--entity', 'e2e_gate', '--message', 'Create', '--stage', '10', '--attribute', 'amount:int=2000', '--url', url],
      env,
    );
    expect(tooHigh.code).toBe(1);
    expect(tooHigh.stderr).toMatch(/^422 Unprocessable Entity/);
    expect(tooHigh.stderr).toContain('rejected by e2e-gate (e2e-too-much)');
    const withinLimit = await cliProcess(
      ['send', '--entity', 'e2e_gate', '--message', 'Create', '--stage', '10', '--attribute', 'amount:int=500', '--url', url],
      env,
    );
    expect(withinLimit, withinLimit.stderr).toMatchObject({ code: 0 });
    expect(withinLimit.stdout).toMatch(/^202 Accepted/);

    // A handler that fails on every attempt: the event ends in failures.
    writeFileSync(flag, 'fail');
    const failing = await cliProcess(['send', '--entity', 'e2e_widget', '--message', 'Create', '--url', url], env);
    expect(failing.code, failing.stderr).toBe(0);
    const failingId = /eventId (\S+)/.exec(failing.stdout)![1]!;
    const listed = await eventually(
      async () => {
        const result = await cliProcess(['failures'], env);
        return result.stdout.startsWith(failingId) ? result : false;
      },
      'the poisoned event to be listed',
      { intervalMs: 200 },
    );
    expect(listed.stdout).toContain('attempts=2');
    expect(listed.stdout).toContain('failing on purpose');
    expect(loop.output()).toMatch(/Moving message to queue 'dataverse-events-poison'/);

    // Fixed: replay it, and it is processed.
    rmSync(flag);
    expect(await cliProcess(['replay', failingId], env)).toMatchObject({ code: 0, stdout: `${failingId}  replayed\n` });
    await loop.waitFor(new RegExp(`e2e handler ran eventId=${failingId}`), 'the replayed event to be handled');
    expect(await cliProcess(['failures'], env)).toMatchObject({ code: 0, stderr: 'No poisoned events.\n' });

    // Ctrl-C: nothing npm start started is left.
    loop.child.kill('SIGINT');
    expect(await loop.exited).toBe(0);
    expect(await Promise.all([httpPort, ports.blob, ports.queue, ports.table].map(isListening))).toEqual([false, false, false, false]);
    expect(isRunning(hostPid)).toBe(false);
    expect(isRunning(workerPid)).toBe(false);
    expect(isRunning(Number(readFileSync(compilerPidFile, 'utf8')))).toBe(false);
  }, 180_000);
});
