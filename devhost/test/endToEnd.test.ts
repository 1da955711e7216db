import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { webhookUrl } from '../../src/functionNames';
import { SAMPLES_DIR } from '../../test/support/fixtures';
import { freeAzuritePorts, freePorts } from '../../test/support/ports';
import { useTempDirs } from '../../test/support/tempDirs';
import { connectionStringFor } from '../azurite';
import { FUNC_MISSING_NOTICE, isListening } from '../start';
import { isRunning, startDevLoopProcess } from './devLoop';

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
const BIN = path.join(REPO, 'bin', 'dataverse-webhooks.js');
const FAILING_HANDLER = path.join(__dirname, 'apps', 'e2eFailingHandler.cjs');
const tempDir = useTempDirs();

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function until<T>(probe: () => Promise<T | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('npm start on a machine without func, end to end over HTTP', () => {
  it('serves the webhook, runs the handlers, poisons, replays, and stops everything on Ctrl-C', async () => {
    const files = tempDir('end-to-end-');
    const ports = await freeAzuritePorts();
    const [httpPort] = await freePorts(1);
    const flag = path.join(files, 'fail');
    const workerPidFile = path.join(files, 'worker.pid');
    const idle = path.join(files, 'idle-compiler.cjs');
    const compilerPidFile = path.join(files, 'compiler.pid');
    writeFileSync(
      idle,
      `require('node:fs').writeFileSync(${JSON.stringify(compilerPidFile)}, String(process.pid));\nsetInterval(() => {}, 1000);\n`,
    );
    const loop = startDevLoopProcess(
      {
        projectRoot: REPO,
        ports,
        azuriteLocation: null,
        port: httpPort!,
        watch: { command: process.execPath, args: [idle] },
        localHostArgs: ['--entry-point', FAILING_HANDLER],
      },
      {
        PATH: tempDir('no-func-'),
        APPLICATIONINSIGHTS_CONNECTION_STRING: '',
        E2E_FAIL_FLAG: flag,
        E2E_WORKER_PID_FILE: workerPidFile,
        // host.json, overridden the way the host allows: two attempts, no wait between them.
        AzureFunctionsJobHost__extensions__queues__maxDequeueCount: '2',
        AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:00',
      },
    );
    const [, , hostPid] = await loop.waitFor(/Host started: (\S+) \(process (\d+)\)/, 'the local host');
    expect(loop.output()).toContain(FUNC_MISSING_NOTICE);
    const workerPid = Number(readFileSync(workerPidFile, 'utf8'));

    const url = webhookUrl(`http://localhost:${httpPort}`);
    const env = { PATH: process.env['PATH'], AzureWebJobsStorage: connectionStringFor(ports), APPLICATIONINSIGHTS_CONNECTION_STRING: '' };

    // A real captured payload, as Dataverse sends it.
    const sent = await cli(['send', path.join(SAMPLES_DIR, '06-account-create-sync-postop-webhooksite-unicode.json'), '--url', url], env);
    expect(sent, sent.stderr).toMatchObject({ code: 0 });
    const eventId = /^202 Accepted\s+eventId (\S+)/.exec(sent.stdout)?.[1];
    expect(eventId, sent.stdout).toBeTruthy();
    await loop.waitFor(new RegExp(`\\[processDataverseEvent [0-9a-f]{8}\\] e2e saw the event eventId=${eventId}`), 'the test’s handler');

    expect(await cli(['failures'], env)).toMatchObject({ code: 0, stdout: '', stderr: 'No poisoned events.\n' });

    // A synchronous PreValidation step, decided inside the request by the test's inline handler:
    // refused above its maximum (a 422 Dataverse does not retry), allowed below it.
    const tooHigh = await cli(
      ['send', '--entity', 'e2e_gate', '--message', 'Create', '--stage', '10', '--attribute', 'amount:int=2000', '--url', url],
      env,
    );
    expect(tooHigh.code).toBe(1);
    expect(tooHigh.stderr).toMatch(/^422 Unprocessable Entity/);
    expect(tooHigh.stderr).toContain('rejected by e2e-gate (e2e-too-much)');
    const withinLimit = await cli(
      ['send', '--entity', 'e2e_gate', '--message', 'Create', '--stage', '10', '--attribute', 'amount:int=500', '--url', url],
      env,
    );
    expect(withinLimit, withinLimit.stderr).toMatchObject({ code: 0 });
    expect(withinLimit.stdout).toMatch(/^202 Accepted/);

    // A handler that fails on every attempt: the event ends in failures.
    writeFileSync(flag, 'fail');
    const failing = await cli(['send', '--entity', 'e2e_widget', '--message', 'Create', '--url', url], env);
    expect(failing.code, failing.stderr).toBe(0);
    const failingId = /eventId (\S+)/.exec(failing.stdout)![1]!;
    const listed = await until(async () => {
      const result = await cli(['failures'], env);
      return result.stdout.startsWith(failingId) ? result : false;
    }, 'the poisoned event to be listed');
    expect(listed.stdout).toContain('attempts=2');
    expect(listed.stdout).toContain('failing on purpose');
    expect(loop.output()).toMatch(/Moving message to queue 'dataverse-events-poison'/);

    // Fixed: replay it, and it is processed.
    rmSync(flag);
    expect(await cli(['replay', failingId], env)).toMatchObject({ code: 0, stdout: `${failingId}  replayed\n` });
    await loop.waitFor(new RegExp(`e2e handler ran eventId=${failingId}`), 'the replayed event to be handled');
    expect(await cli(['failures'], env)).toMatchObject({ code: 0, stderr: 'No poisoned events.\n' });

    // Ctrl-C: nothing npm start started is left.
    loop.child.kill('SIGINT');
    expect(await loop.exited).toBe(0);
    expect(await Promise.all([httpPort!, ports.blob, ports.queue, ports.table].map(isListening))).toEqual([false, false, false, false]);
    expect(isRunning(Number(hostPid))).toBe(false);
    expect(isRunning(workerPid)).toBe(false);
    expect(isRunning(Number(readFileSync(compilerPidFile, 'utf8')))).toBe(false);
  }, 180_000);
});
