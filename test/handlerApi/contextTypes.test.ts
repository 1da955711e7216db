import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The handler context's typing, checked by compiling small programs with the project's own
 * compiler and settings: each must compile, or fail with exactly the error named. Unlike a
 * `@ts-expect-error` line (test/handlerApi/context.test-d.ts), this fails if the error is a
 * different one.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
// Inside the repository, so the programs resolve the app's modules and types as the app does.
const DIR = path.join(ROOT, 'node_modules', '.cache', `context-types-${process.pid}`);
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

const HEADER = `import { on } from '../../../src/handlerApi';\n`;

const PROGRAMS: Record<string, { code: string; error: RegExp | null }> = {
  'declared-alias': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update', images: { pre: { type: 'PreImage', columns: ['firstname'] } } }, (_e, ctx) => {\n  ctx.changes('pre');\n  ctx.preImage('pre');\n});\n`,
    error: null,
  },
  'undeclared-alias': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update', images: { pre: { type: 'PreImage' } } }, (_e, ctx) => {\n  ctx.changes('PreImage');\n});\n`,
    error: /\(3,15\): error TS2345: Argument of type '"PreImage"' is not assignable to parameter of type '"pre"/,
  },
  'per-record': {
    code: `on({ name: 'a', entity: 'account', message: 'Create', perRecord: true }, (_e, ctx) => {\n  const id: string = ctx.record.id;\n  void id;\n});\n`,
    error: null,
  },
  'not-per-record': {
    code: `on({ name: 'a', entity: 'account', message: 'Create' }, (_e, ctx) => {\n  const id: string = ctx.record.id;\n  void id;\n});\n`,
    error: /\(3,22\): error TS18047: 'ctx\.record' is possibly 'null'/,
  },
  reread: {
    code: `on({ name: 'a', entity: 'account', message: 'Update', rereadTruncated: ['name'] }, (_e, ctx) => {\n  if (ctx.truncated) void ctx.rereadRecord.name;\n});\n`,
    error: null,
  },
  'reread-not-truncated': {
    code: `on({ name: 'a', entity: 'account', message: 'Update', rereadTruncated: ['name'] }, (_e, ctx) => {\n  void ctx.rereadRecord.name;\n});\n`,
    error: /\(3,8\): error TS18047: 'ctx\.rereadRecord' is possibly 'null'/,
  },
  // Table and message names: Dataverse's own (src/dataverse/knownNames.ts), or publisher-prefixed.
  'table-typo': {
    code: `on({ name: 'a', entity: 'contcat', message: 'Update' }, () => undefined);\n`,
    error:
      /\(2,4\): error TS2345: [\s\S]*Property '"entity \\"contcat\\" is not a Dataverse table: check its spelling \(a custom table's name carries its publisher prefix: new_project\)"' is missing/,
  },
  'message-typo-with-filtering-attributes': {
    code: `on({ name: 'a', entity: 'contact', message: 'Updte', filteringAttributes: ['lastname'] }, () => undefined);\n`,
    error:
      /\(2,4\): error TS2345: [\s\S]*Property '"message \\"Updte\\" is not a Dataverse message: check its spelling \(a custom API's name carries its publisher prefix: contoso_Approve\)"' is missing/,
  },
  'message-typo-in-a-list': {
    code: `on({ name: 'a', entity: 'contact', message: ['Create', 'Delte'] }, () => undefined);\n`,
    error: /\(2,4\): error TS2345: [\s\S]*message \\"Delte\\" is not a Dataverse message/,
  },
  'custom-table-and-api': {
    code: `on({ name: 'a', entity: 'new_project', message: ['Update', 'contoso_Approve'] }, () => undefined);\non({ name: 'b', entity: 'opportunity', message: 'Win' }, () => undefined);\n`,
    error: null,
  },
};

describe('the handler context is typed from the declaration', () => {
  it('compiles what the declaration allows and refuses the rest, each with its own error', async () => {
    mkdirSync(DIR, { recursive: true });
    for (const [name, program] of Object.entries(PROGRAMS)) writeFileSync(path.join(DIR, `${name}.ts`), HEADER + program.code);
    writeFileSync(
      path.join(DIR, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.test.json',
        compilerOptions: { rootDir: '../../..' },
        include: [],
        files: Object.keys(PROGRAMS).map((name) => `${name}.ts`),
      }),
    );
    const output = await promisify(execFile)(process.execPath, [TSC, '-p', path.join(DIR, 'tsconfig.json'), '--pretty', 'false'], {
      cwd: ROOT,
    }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    // One diagnostic per error: its line, and the indented lines that elaborate it (the missing property a rule names).
    const diagnostics = output.split(/\n(?=\S)/);
    const errorsOf = (name: string) => diagnostics.filter((diagnostic) => diagnostic.includes(`/${name}.ts(`));
    for (const [name, program] of Object.entries(PROGRAMS)) {
      const errors = errorsOf(name);
      if (program.error === null) expect(errors, name).toEqual([]);
      else {
        expect(errors, name).toHaveLength(1);
        expect(errors[0], name).toMatch(program.error);
      }
    }
  });
});
