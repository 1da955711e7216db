import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTypesCommand } from '../src/cli/types';
import { webhookUrl } from '../src/functionNames';
import { registryOf } from '../src/handlerApi/load';
import { cleanChildEnv, type Exited, runToExit } from './support/childProcess';
import { captureIO } from './support/cliIO';
import { type FakeDataverse, startFakeDataverse } from './support/fakeDataverse';
import { copyOfProject as copyOfProjectIn } from './support/projectCopy';
import { realTableFacts } from './support/realTableDefinitions';
import { useTempDirs } from './support/tempDirs';
import { scopedTokens } from './support/tokens';

/**
 * The boundary between the engine and the user's app (src/handlers): nothing else in the project's
 * typecheck, build or tests may depend on which handlers exist, or on tables being untyped. Proved
 * on a copy of the project (node_modules linked) that a user has made theirs:
 *  (a) every example handler and its tests deleted;
 *  (b) a handler of their own for a custom table, its test written with the kit, and the module
 *      `types` generates from real table definitions (samples/table-definitions, through the Web
 *      API stand-in) committed beside it;
 *  (c) a declaration the registry refuses: only the commands that need the handlers fail, with one line.
 * In each, `npm run typecheck` and `npm run build` pass, and so do the engine's tests that once
 * leaned on the examples (a focused set: the whole suite is what `npm test` runs here).
 */
const tempDir = useTempDirs();
/** The engine tests that leaned on the examples, and those of the boundary itself. */
const ENGINE_TESTS = ['test/cli/register.test.ts', 'test/cli/status.test.ts', 'test/handlerApi/wiring.test.ts'];

function run(cwd: string, command: string, args: string[]): Promise<Exited> {
  // A clean environment: the nested vitest must not think it runs inside this one.
  return runToExit(command, args, { cwd, env: cleanChildEnv() });
}

const node = (cwd: string, ...args: string[]) => run(cwd, process.execPath, args);
const tsc = (cwd: string, project: string) => node(cwd, 'node_modules/typescript/bin/tsc', '-p', project, '--pretty', 'false');
const vitest = (cwd: string, files: string[]) => node(cwd, 'node_modules/vitest/vitest.mjs', 'run', ...files);

/** The project as committed plus what is not yet, without its build, with nothing beside it. */
const copyOfProject = () => copyOfProjectIn(tempDir('boundary-'));

/** typecheck (both programs), build: each passes. */
async function expectTypecheckAndBuild(copy: string): Promise<void> {
  for (const project of ['tsconfig.test.json', 'test/tableTypes/tsconfig.json', 'tsconfig.json', 'devhost']) {
    const result = await tsc(copy, project);
    expect(result.stdout + result.stderr, `tsc -p ${project}`).toBe('');
    expect(result.code, `tsc -p ${project}`).toBe(0);
  }
}

async function expectGreen(copy: string, files: string[]): Promise<void> {
  const result = await vitest(copy, files);
  expect(result.code, `${result.stdout}\n${result.stderr}`.slice(-6000)).toBe(0);
  expect(result.stdout).toMatch(/Tests\s+\d+ passed/);
}

const emptyHandlers = `/** No handlers yet: list here each file of this folder that declares some. */\nexport const handlerFiles: object[] = [];\n`;

// The three copies are independent: run side by side, they take the time of the longest.
describe.concurrent('the app made its user’s own', () => {
  let dataverse: FakeDataverse;
  beforeAll(async () => {
    dataverse = await startFakeDataverse({
      tables: Object.fromEntries(['account', 'opportunity', 'cdsify_integrationtest'].map((table) => [table, realTableFacts(table)])),
    });
  });
  afterAll(() => dataverse.close());

  it('(a) without the example handlers: typecheck, build and the engine’s tests pass, end to end included', async () => {
    const copy = await copyOfProject();
    rmSync(path.join(copy, 'src', 'handlers'), { recursive: true });
    mkdirSync(path.join(copy, 'src', 'handlers'));
    writeFileSync(path.join(copy, 'src', 'handlers', 'index.ts'), emptyHandlers);
    await expectTypecheckAndBuild(copy);
    await expectGreen(copy, [...ENGINE_TESTS, 'devhost/test/endToEnd.test.ts']);
    const plan = await node(copy, 'bin/dataverse-webhooks.js', 'register', '--plan');
    expect(plan).toMatchObject({ code: 0, stderr: '' });
    expect(plan.stdout).toContain('The handlers declare no step.');
  }, 300_000);

  it('(b) with a handler for a custom table, its kit test, and the module `types` generates from real definitions', async () => {
    const copy = await copyOfProject();
    const handlers = path.join(copy, 'src', 'handlers');
    rmSync(handlers, { recursive: true });
    mkdirSync(handlers);
    const io = captureIO({ cwd: copy, env: { DATAVERSE_URL: dataverse.url } });
    const types = createTypesCommand(
      { tokens: () => scopedTokens({ [`${dataverse.url}/.default`]: dataverse.token }), sleep: async () => {} },
      registryOf([]),
    );
    expect(await types(['--tables', 'account,contact,opportunity,cdsify_integrationtest'], io), io.err()).toBe(0);
    expect(io.out()).toMatch(
      /^Wrote src\/handlers\/tables\.generated\.ts: account \d+, cdsify_integrationtest \d+, contact \d+, opportunity \d+ columns/,
    );
    writeFileSync(
      path.join(handlers, 'integrationTest.ts'),
      `import { on } from '../handlerApi';

export const integrationTestRenamed = on(
  {
    name: 'integration-test-renamed',
    entity: 'cdsify_integrationtest',
    message: 'Update',
    filteringAttributes: ['cdsify_name'],
    images: { pre: { type: 'PreImage', columns: ['cdsify_name'] } },
  },
  async (_event, ctx) => {
    // Typed from the generated module: a misspelt column would not compile.
    const before: string | null | undefined = ctx.preImage('pre')?.attributes.cdsify_name;
    const after: string | null | undefined = ctx.attribute('cdsify_name');
    ctx.log.info('Integration test renamed', { renamed: before !== after });
  },
);
`,
    );
    writeFileSync(
      path.join(handlers, 'integrationTest.test.ts'),
      `import { expect, it } from 'vitest';
import { generatedEvent, runHandler } from '../handlerApi/testing';
import { integrationTestRenamed } from './integrationTest';

it('logs a rename', async () => {
  const event = generatedEvent({ entity: 'cdsify_integrationtest', message: 'Update', attributes: ['cdsify_name=New'], preImages: ['pre:cdsify_name=Old'] });
  const run = await runHandler(integrationTestRenamed, event);
  expect(run.log).toEqual([expect.objectContaining({ message: 'Integration test renamed', properties: expect.objectContaining({ renamed: true }) })]);
});
`,
    );
    writeFileSync(
      path.join(handlers, 'index.ts'),
      `import * as integrationTest from './integrationTest';\n\nexport const handlerFiles = [integrationTest];\n`,
    );
    // A misspelt column does not compile, which shows the module types the handler.
    writeFileSync(
      path.join(handlers, 'misspelt.ts'),
      `import { on } from '../handlerApi';\nexport const misspelt = on({ name: 'm', entity: 'cdsify_integrationtest', message: 'Update', filteringAttributes: ['cdsify_nmae'] }, () => undefined);\n`,
    );
    expect((await tsc(copy, 'tsconfig.json')).stdout).toContain('src/handlers/misspelt.ts(2,');
    rmSync(path.join(handlers, 'misspelt.ts'));
    await expectTypecheckAndBuild(copy);
    await expectGreen(copy, [...ENGINE_TESTS, 'test/functions', 'test/handlerApi/loadErrors.test.ts', 'src/handlers']);
    const plan = await node(copy, 'bin/dataverse-webhooks.js', 'register', '--plan');
    expect(plan, plan.stderr).toMatchObject({ code: 0, stderr: '' });
    expect(plan.stdout).toContain('Update of cdsify_integrationtest');
    expect(plan.stdout).toContain('Columns checked against src/handlers/tables.generated.ts.');
  }, 300_000);

  it('(c) with a declaration the registry refuses: one line from the commands that need the handlers, the others work', async () => {
    const copy = await copyOfProject();
    const handlers = path.join(copy, 'src', 'handlers');
    writeFileSync(
      path.join(handlers, 'early.ts'),
      `import { on } from '../handlerApi';\n\nexport const early = on(\n  // @ts-expect-error asynchronous in PreValidation: refused by the compiler too, so forced here\n  { name: 'early-async', entity: 'contact', message: 'Update', stage: 'PreValidation', mode: 'Asynchronous' },\n  () => undefined,\n);\n`,
    );
    writeFileSync(
      path.join(handlers, 'index.ts'),
      readFileSync(path.join(handlers, 'index.ts'), 'utf8').replace(
        'export const handlerFiles = [',
        "import * as early from './early';\n\nexport const handlerFiles = [early, ",
      ),
    );
    expect(await tsc(copy, 'tsconfig.json')).toMatchObject({ code: 0 });
    const line =
      "The app's handlers do not load: src/handlers/early.ts: handler early-async: Dataverse runs asynchronous steps only in PostOperation\n";
    expect(await node(copy, 'bin/dataverse-webhooks.js', 'register', '--plan')).toEqual({ code: 1, stdout: '', stderr: line });
    expect(await node(copy, 'bin/dataverse-webhooks.js', 'types', '--org', 'https://contoso.crm.dynamics.com')).toEqual({
      code: 1,
      stdout: '',
      stderr: line,
    });
    expect(await node(copy, 'bin/dataverse-webhooks.js', '--help')).toMatchObject({ code: 0 });
    const inspected = await node(
      copy,
      'bin/dataverse-webhooks.js',
      'inspect',
      'samples/06-account-create-sync-postop-webhooksite-unicode.json',
    );
    expect(inspected).toMatchObject({ code: 0, stderr: '' });
    const send = await node(
      copy,
      'bin/dataverse-webhooks.js',
      'send',
      'samples/06-account-create-sync-postop-webhooksite-unicode.json',
      '--url',
      webhookUrl('http://127.0.0.1:9'),
    );
    expect(send.code).toBe(1);
    expect(send.stderr).not.toContain('handler');
  }, 120_000);
});
