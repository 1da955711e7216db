import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { FunctionsWorker } from '../../devhost/functionsCore';
import { main } from '../../src/cli/main';
import { FUNCTION_NAMES } from '../../src/functionNames';
import { on } from '../../src/handlerApi';
import { HandlerLoadError, registryOf } from '../../src/handlerApi/load';
import { handlerFiles } from '../../src/handlers';
import { captureIO } from '../support/cliIO';
import { SAMPLES_DIR } from '../support/fixtures';
import { invocationContext, webhookRequest } from '../support/requests';

/**
 * A declaration the registry refuses is one line naming its file, the handler and the reason:
 * from the CLI (only the commands that need the handlers fail; the others work), and in the
 * app's start-up log, which then answers 503 until it is fixed. Nothing prints a stack.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const REASON = 'handler early-async: Dataverse runs asynchronous steps only in PostOperation';

const refused = on(
  // @ts-expect-error the compiler refuses it too; plain JavaScript (or a cast) would not be stopped
  { name: 'early-async', entity: 'test_widget', message: 'Update', stage: 'PreValidation', mode: 'Asynchronous' },
  () => undefined,
);

describe('a refused declaration', () => {
  it('is one line: the declaring file, the handler, the reason', () => {
    const error = (() => {
      try {
        registryOf([{ refused }]);
      } catch (caught) {
        return caught;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(HandlerLoadError);
    expect((error as Error).message).toBe(`test/handlerApi/loadErrors.test.ts: ${REASON}`);
  });

  it('fails the CLI commands that need the handlers with that line, exit 1, and no other command', async () => {
    (handlerFiles as unknown[]).push({ refused });
    const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const io = captureIO({ env, cwd: ROOT });
      return { code: await main(args, io), out: io.out(), err: io.err() };
    };
    for (const command of [
      ['register', '--plan'],
      ['types', '--org', 'https://contoso.crm.dynamics.com'],
    ]) {
      expect(await run(command), command.join(' ')).toEqual({
        code: 1,
        out: '',
        err: `The app's handlers do not load: test/handlerApi/loadErrors.test.ts: ${REASON}\n`,
      });
    }
    expect((await run(['--help'])).code).toBe(0);
    expect((await run(['register', '--help'])).code).toBe(0);
    expect(await run(['inspect', path.join(SAMPLES_DIR, '06-account-create-sync-postop-webhooksite-unicode.json')])).toMatchObject({
      code: 0,
      err: '',
    });
    expect(await run(['failures'], { AzureWebJobsStorage: inject('azuriteConnectionString') })).toMatchObject({
      code: 0,
      err: 'No poisoned events.\n',
    });
    expect(await run(['replay', '--all'], { AzureWebJobsStorage: inject('azuriteConnectionString') })).toMatchObject({ code: 0 });
    expect(await run(['types', '--tables', 'account'], { DATAVERSE_URL: 'https://contoso' })).toMatchObject({
      code: 2,
      err: expect.not.stringContaining('handler'),
    });
  });

  it('is logged once as the app starts, and the webhook answers 503 (Dataverse retries) until it is fixed', async () => {
    const worker = new FunctionsWorker({ log: () => undefined });
    worker.install();
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      await worker.startApp(ROOT, [path.join(__dirname, 'apps', 'refusedDeclaration.cjs')]);
    } finally {
      process.stderr.write = write;
    }
    try {
      const line = `dataverse-webhooks: the handlers do not load: test/handlerApi/apps/refusedDeclaration.cjs: ${REASON}\n`;
      expect(written.filter((text) => text.includes('handlers do not load'))).toEqual([line]);
      expect(written.join('')).not.toMatch(/\n\s+at /);
      // The module the worker loaded (importing it again would register its functions twice).
      const webhook = createRequire(__filename)(
        path.join(ROOT, 'dist', 'src', 'functions', 'dataverseWebhook.js'),
      ) as typeof import('../../src/functions/dataverseWebhook');
      const http = invocationContext(FUNCTION_NAMES.webhook);
      const response = await webhook.receiveDataverseWebhook(webhookRequest('{}'), http.context);
      expect(response).toMatchObject({ status: 503, jsonBody: { error: 'handlers-invalid' } });
      expect(http.text()).toContain('the handlers do not load');
    } finally {
      worker.uninstall();
    }
  });
});
