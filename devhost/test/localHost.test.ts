import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { QueueServiceClient } from '@azure/storage-queue';
import { describe, expect, inject, it } from 'vitest';
import { useTempDirs } from '../../test/support/tempDirs';
import { eventually, startHostProcess } from './devHost';

/**
 * The local host as npm start runs it (dist/devhost/hostProcess.js, a process of its own with
 * its worker), on a small app of its own (devhost/test/apps/basic) and the test Azurite.
 */

const APP = path.join(__dirname, 'apps', 'basic');
const tempDir = useTempDirs();

interface RunningHost {
  child: ChildProcess;
  baseUrl: string;
  output: () => string;
  files: { hooks: string; results: string };
  queueName: string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  output?: () => string,
  timeoutMs = 45_000,
): Promise<T> {
  return eventually(probe, what, { timeoutMs, intervalMs: 25, ...(output ? { output } : {}) });
}

function jsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

/** The host on the test app; `after` runs it on the queue and files of an earlier host. */
async function startHost(options: { args?: string[]; after?: RunningHost; env?: Record<string, string> } = {}): Promise<RunningHost> {
  const args = options.args ?? [];
  const dir = tempDir('local-host-');
  const files = options.after?.files ?? { hooks: path.join(dir, 'hooks.jsonl'), results: path.join(dir, 'results.jsonl') };
  const queueName = options.after?.queueName ?? `work-${randomBytes(4).toString('hex')}`;
  const started = await startHostProcess({
    cwd: APP,
    args,
    env: {
      AzureWebJobsStorage: inject('azuriteConnectionString'),
      WORK_QUEUE: queueName,
      HOOKS_FILE: files.hooks,
      RESULTS_FILE: files.results,
      // The app's timer function: never due in these tests (but at startup), unless a test says so.
      TICK_SCHEDULE: '0 0 0 1 1 *',
      TICKS_FILE: path.join(dir, 'ticks.jsonl'),
      ...options.env,
    },
  });
  return {
    child: started.child,
    baseUrl: started.baseUrl,
    output: started.output,
    files,
    queueName,
    exited: started.exited,
    async stop() {
      started.child.kill('SIGTERM');
      return started.exited;
    },
  };
}

async function queueOf(host: RunningHost) {
  const queue = QueueServiceClient.fromConnectionString(inject('azuriteConnectionString')).getQueueClient(host.queueName);
  await queue.createIfNotExists();
  return queue;
}

const send = async (host: RunningHost, message: unknown) =>
  (await queueOf(host)).sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'));

describe('the local host', () => {
  it('runs a timer function on its schedule (six-field NCRONTAB), at startup when asked, and on after a failure', async () => {
    const host = await startHost({ env: { TICK_SCHEDULE: '*/2 * * * * *', TICK_ON_STARTUP: 'true' } });
    expect(host.output()).toMatch(/tick: timerTrigger/);
    const ticksFile = path.join(path.dirname(host.files.results), 'ticks.jsonl');
    type Tick = {
      timer: { isPastDue: boolean; schedule: { adjustForDST: boolean }; scheduleStatus: { last: string; next: string } | null };
      at: string;
    };
    const ticks = await waitFor(
      () => jsonLines<Tick>(ticksFile).length >= 3 && jsonLines<Tick>(ticksFile),
      'three ticks',
      host.output,
      15_000,
    );
    // The first at startup (it failed), the next ones on even seconds.
    expect(host.output()).toMatch(/Executed 'Functions\.tick' \(Failed, Id=/);
    expect(host.output()).toContain('first tick fails');
    for (const tick of ticks.slice(1)) expect(new Date(tick.at).getUTCSeconds() % 2).toBe(0);
    // The Timer as @azure/functions gives it: the host's TimerInfo, camel-cased.
    expect(ticks[1]!.timer).toMatchObject({ isPastDue: false, schedule: { adjustForDST: true } });
    expect(ticks[1]!.timer.scheduleStatus?.next).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
    expect(await host.stop()).toBe(0);
  });

  it('does not start a timer function whose schedule is neither NCRONTAB with seconds nor a timespan', async () => {
    const host = await startHost({ env: { TICK_SCHEDULE: '*/5 * * * *' } });
    await waitFor(() => /The function tick will not run/.test(host.output()), 'the error', host.output);
    expect(host.output()).toContain("The schedule expression '*/5 * * * *' was not recognized as a valid cron expression");
    expect(await host.stop()).toBe(0);
  });

  it('loads the app as the worker does (package.json main, index first) and runs its hooks around invocations', async () => {
    const host = await startHost();
    expect(host.output()).toMatch(/readItem: \[GET\] http:\/\/localhost:\d+\/api\/items\/\{id:int\}/);
    expect(host.output()).toMatch(/work: queueTrigger/);
    const response = await fetch(`${host.baseUrl}/api/items/7`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ functionName: 'readItem', indexLoadedFirst: true });

    expect(await host.stop()).toBe(0);
    const hooks = jsonLines<{ hook: string; functionName?: string; sawPre?: boolean; pid: number }>(host.files.hooks);
    expect(hooks.map((hook) => hook.hook)).toEqual(['appStart', 'preInvocation', 'postInvocation', 'appTerminate']);
    expect(hooks[2]).toMatchObject({ functionName: 'readItem', sawPre: true });
    // The hooks ran in the worker, a process of the host's own.
    expect(hooks[0]!.pid).not.toBe(host.child.pid);
  });

  it('routes by route and method like the host, without checking keys', async () => {
    const host = await startHost();
    const get = await fetch(`${host.baseUrl}/API/Items/42?x=1&x=2&y=`, { headers: { 'x-test': 'yes' } });
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject({
      functionName: 'readItem',
      method: 'GET',
      params: { id: '42' },
      query: { x: '1,2', y: '' },
      header: 'yes',
    });

    // Same route, other methods: another function (authLevel admin, not checked locally either).
    const post = await fetch(`${host.baseUrl}/api/items/42`, { method: 'POST', body: 'héllo', headers: { 'content-type': 'text/plain' } });
    expect(await post.json()).toMatchObject({ functionName: 'writeItem', method: 'POST', body: 'héllo' });

    // A known route with a method no function takes, a constraint that fails, an unknown route: 404.
    expect((await fetch(`${host.baseUrl}/api/items/42`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${host.baseUrl}/api/items/abc`)).status).toBe(404);
    expect((await fetch(`${host.baseUrl}/api/nowhere`)).status).toBe(404);
    expect((await fetch(`${host.baseUrl}/items/42`)).status).toBe(404);

    // No methods listed: every method; a catch-all takes the rest of the path.
    const any = await fetch(`${host.baseUrl}/api/any/a/b%20c`, { method: 'PATCH', body: 'x' });
    expect(await any.json()).toMatchObject({ functionName: 'anyMethod', method: 'PATCH', params: { rest: 'a/b c' } });
    await host.stop();
  });

  it("answers as the host does: the function's status, headers and cookies; 204 for no answer; an empty 500 for a throw", async () => {
    const host = await startHost();
    const teapot = await fetch(`${host.baseUrl}/api/teapot`);
    expect(teapot.status).toBe(418);
    expect(teapot.headers.get('x-kind')).toBe('teapot');
    expect(teapot.headers.get('set-cookie')).toBe('a=b; HttpOnly');
    expect(await teapot.text()).toBe('short and stout');

    const nothing = await fetch(`${host.baseUrl}/api/nothing`);
    expect(nothing.status).toBe(204);

    const thrown = await fetch(`${host.baseUrl}/api/throws`);
    expect(thrown.status).toBe(500);
    expect(await thrown.text()).toBe('');
    await waitFor(() => host.output().includes("Executed 'Functions.throws' (Failed"), 'the failure to be logged', host.output);
    // Each line the app logs carries the function's name and invocation id.
    const id = /Executing 'Functions\.throws' \(Reason='[^']*', Id=([0-9a-f-]{36})\)/.exec(host.output())![1]!;
    expect(host.output()).toContain(`[throws ${id.slice(0, 8)}] about to fail`);
    expect(host.output()).toContain('Exception: boom');
    await host.stop();
  });

  it('hands a queue message to the function as the worker does: parsed JSON, and the trigger metadata', async () => {
    const host = await startHost();
    await send(host, { name: 'first' });
    type Seen = { invocationId: string; messageType: string; message: unknown; triggerMetadata: Record<string, unknown> };
    const [seen] = await waitFor(
      () => jsonLines<Seen>(host.files.results).length === 1 && jsonLines<Seen>(host.files.results),
      'the invocation',
      host.output,
    );
    expect(seen).toMatchObject({ messageType: 'object', message: { name: 'first' } });
    const metadata = seen!.triggerMetadata;
    expect(metadata).toMatchObject({ dequeueCount: 1, queueTrigger: { name: 'first' }, sys: { methodName: 'work' } });
    expect(typeof metadata['id']).toBe('string');
    expect(typeof metadata['popReceipt']).toBe('string');
    for (const time of ['insertionTime', 'expirationTime', 'nextVisibleTime'])
      expect(metadata[time]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
    await waitFor(() => host.output().includes(`[work ${seen!.invocationId.slice(0, 8)}] working on first`), 'the log line', host.output);
    await host.stop();
  });

  it('a failing message is retried by the host listener and moved to <queue>-poison after maxDequeueCount', async () => {
    const host = await startHost();
    await send(host, { name: 'bad', action: 'fail' });
    const poison = QueueServiceClient.fromConnectionString(inject('azuriteConnectionString')).getQueueClient(`${host.queueName}-poison`);
    await waitFor(
      async () => (await poison.exists()) && (await poison.peekMessages()).peekedMessageItems.length === 1,
      'the poison queue',
      host.output,
    );
    expect(
      jsonLines<{ triggerMetadata: { dequeueCount: number } }>(host.files.results).map((result) => result.triggerMetadata.dequeueCount),
    ).toEqual([1, 2, 3]);
    await waitFor(() => host.output().includes(`Moving message to queue '${host.queueName}-poison'`), 'the move to be logged', host.output);
    await host.stop();
  });

  it('an invocation past functionTimeout restarts the worker, failing the other invocation running on it', async () => {
    // host.json: functionTimeout 10 s. The host waits 2 s more, then restarts the worker.
    const host = await startHost();
    type Seen = { invocationId: string; pid: number; message: { name: string }; triggerMetadata: { dequeueCount: number } };
    await send(host, { name: 'hang', action: 'hang-first' });
    const [hang] = await waitFor(
      () => jsonLines<Seen>(host.files.results).length === 1 && jsonLines<Seen>(host.files.results),
      'the hanging invocation',
      host.output,
    );
    // Started well after the hanging one, so that the restart (10 + 2 s after it) comes before
    // its own timeout (10 s after it starts).
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    await send(host, { name: 'slow', action: 'slow-first' });
    const seen = await waitFor(
      () => {
        const lines = jsonLines<Seen>(host.files.results);
        return lines.some((line) => line.message.name === 'slow' && line.triggerMetadata.dequeueCount === 2) && lines;
      },
      'the slow message to be retried',
      host.output,
      60_000,
    );
    const slowFirst = seen.find((line) => line.message.name === 'slow' && line.triggerMetadata.dequeueCount === 1)!;
    const slowRetry = seen.find((line) => line.message.name === 'slow' && line.triggerMetadata.dequeueCount === 2)!;
    expect(slowFirst.pid).toBe(hang!.pid);
    expect(slowRetry.pid).not.toBe(hang!.pid);
    const output = host.output();
    expect(output).toContain(`Restarting worker process executing invocationId '${hang!.invocationId}'`);
    expect(output).toContain(`Executed 'Functions.work' (Failed, Id=${hang!.invocationId}`);
    expect(output).toMatch(
      new RegExp(
        `Executed 'Functions\\.work' \\(Failed, Id=${slowFirst.invocationId}[^\\n]*\\n[^\\n]*\\n[^\\n]*Exception: The worker process was restarted after invocation '${hang!.invocationId}' timed out`,
      ),
    );
    await host.stop();
  }, 90_000);

  it('a killed host abandons the message it runs: no delete, no release; it comes back when its lease ends, one attempt spent', async () => {
    const host = await startHost({ args: ['--lease-seconds', '3'] });
    await send(host, { name: 'slow', action: 'slow-first' });
    await waitFor(() => jsonLines(host.files.results).length === 1, 'the invocation', host.output);
    process.kill(-host.child.pid!, 'SIGKILL');
    await host.exited;

    const next = await startHost({ args: ['--lease-seconds', '3'], after: host });
    type Seen = { triggerMetadata: { dequeueCount: number; nextVisibleTime: string } };
    const [first, second] = await waitFor(
      () => {
        const seen = jsonLines<Seen>(host.files.results);
        return seen.length === 2 && seen;
      },
      'the redelivery',
      next.output,
    );
    expect(second!.triggerMetadata.dequeueCount).toBe(2);
    // Received again only once the first lease ended (the storage's clock, whole seconds): the
    // second lease ends at least a lease after the first began.
    expect(Date.parse(second!.triggerMetadata.nextVisibleTime) - Date.parse(first!.triggerMetadata.nextVisibleTime)).toBeGreaterThanOrEqual(
      2_000,
    );
    await waitFor(() => next.output().includes("Executed 'Functions.work' (Succeeded"), 'the retry to succeed', next.output);
    await next.stop();
  }, 90_000);
});
