import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The generated table types, checked by compiling small handler files with the project's own
 * compiler and settings, once with the generated module (generated/tables.generated.ts) and once
 * without it: each program must compile, or fail with exactly the error named. Unlike a
 * `@ts-expect-error` line (typedContext.test-d.ts), this fails if the error is another one, and
 * it shows that without the module the same declarations compile as before.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const GENERATED = path.join(__dirname, 'generated', 'tables.generated.ts');
// Inside the repository, so the programs resolve the app's modules as the app does.
const DIR = path.join(ROOT, 'node_modules', '.cache', `table-types-${process.pid}`);
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

const HEADER = `import { decide, on } from '../../../../src/handlerApi';\n\n`;

interface Program {
  code: string;
  /** The errors with the generated module, in order; none when it compiles. */
  typed: RegExp[];
  /** The errors without it. */
  generic: RegExp[];
}

const PROGRAMS: Record<string, Program> = {
  'typed-values': {
    code: [
      `on({ name: 'a', entity: 'contact', message: 'Update', filteringAttributes: ['gendercode'], images: { pre: { type: 'PreImage', columns: ['firstname'] } } }, (_e, ctx) => {`,
      `  const gender: 1 | 2 | undefined = ctx.record?.attributes.gendercode?.value;`,
      `  const parent: 'account' | 'contact' | undefined = ctx.record?.attributes.parentcustomerid?.logicalName;`,
      `  const first: string | null | undefined = ctx.preImage('pre')?.attributes.firstname;`,
      `  void [gender, parent, first];`,
      `});\n`,
    ].join('\n'),
    typed: [],
    // Without the types every attribute is a DataverseValue: the same reads need checks first.
    generic: [
      /\(4,72\): error TS2551: Property 'value' does not exist on type/,
      /\(5,94\): error TS2339: Property 'logicalName' does not exist on type/,
      /\(6,9\): error TS2322: Type 'DataverseValue \| undefined' is not assignable/,
    ],
  },
  'misspelt-filter': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update', filteringAttributes: ['firstnme'] }, () => undefined);\n`,
    typed: [
      /\(3,55\): error TS2322: [\s\S]*Type '"firstnme"' is not assignable to type 'ColumnName<"contact">'\. Did you mean '"firstname"'\?$/,
    ],
    generic: [],
  },
  'misspelt-image-column': {
    code: `on({ name: 'a', entity: 'account', message: 'Update', images: { pre: { type: 'PreImage', columns: ['naem'] } } }, () => undefined);\n`,
    typed: [/\(3,55\): error TS2322: [\s\S]*Type '"naem"' is not assignable to type 'ColumnName<"account">'\.$/],
    generic: [],
  },
  'choice-value': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update' }, (_e, ctx) => {\n  if (ctx.record?.attributes.gendercode?.value === 3) return;\n});\n`,
    typed: [
      /\(4,7\): error TS2367: This comparison appears to be unintentional because the types '1 \| 2 \| undefined' and '3' have no overlap/,
    ],
    generic: [/\(4,42\): error TS2551: Property 'value' does not exist on type/],
  },
  'image-columns': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update', images: { pre: { type: 'PreImage', columns: ['firstname', 'lastname'] } } }, (_e, ctx) => {\n  void ctx.preImage('pre')?.attributes.emailaddress1;\n});\n`,
    typed: [
      /\(4,40\): error TS2339: Property 'emailaddress1' does not exist on type 'TableAttributes<"contact", "firstname" \| "lastname">'/,
    ],
    generic: [],
  },
  'update-target-optional': {
    code: `on({ name: 'a', entity: 'contact', message: 'Update' }, (_e, ctx) => {\n  const name: string | null = ctx.record!.attributes.firstname;\n  void name;\n});\n`,
    typed: [/\(4,9\): error TS2322: Type 'string \| null \| undefined' is not assignable to type 'string \| null'/],
    generic: [/\(4,9\): error TS2322: Type 'DataverseValue \| undefined' is not assignable to type 'string \| null'/],
  },
};

async function compile(name: string, withGenerated: boolean): Promise<Record<string, string[]>> {
  const dir = path.join(DIR, name);
  mkdirSync(dir, { recursive: true });
  for (const [program, { code }] of Object.entries(PROGRAMS)) writeFileSync(path.join(dir, `${program}.ts`), HEADER + code);
  const files = [...Object.keys(PROGRAMS).map((program) => `${program}.ts`), ...(withGenerated ? [path.relative(dir, GENERATED)] : [])];
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: path.relative(dir, path.join(ROOT, 'tsconfig.test.json')),
      compilerOptions: { rootDir: path.relative(dir, ROOT) },
      include: [],
      files,
    }),
  );
  const output = await promisify(execFile)(process.execPath, [TSC, '-p', path.join(dir, 'tsconfig.json'), '--pretty', 'false'], {
    cwd: ROOT,
  }).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
  // One entry per error: its first line and the indented lines that explain it.
  const errors: string[] = [];
  for (const line of output.split('\n')) {
    if (/^\s/.test(line) && errors.length > 0) errors[errors.length - 1] += `\n${line.trim()}`;
    else if (line) errors.push(line);
  }
  return Object.fromEntries(Object.keys(PROGRAMS).map((program) => [program, errors.filter((error) => error.includes(`/${program}.ts(`))]));
}

function expectErrors(errors: Record<string, string[]>, which: 'typed' | 'generic') {
  for (const [program, expected] of Object.entries(PROGRAMS)) {
    const patterns = expected[which];
    expect(errors[program], `${program} (${which})`).toHaveLength(patterns.length);
    patterns.forEach((pattern, index) => expect(errors[program]![index], `${program} (${which})`).toMatch(pattern));
  }
}

describe('the generated table types', () => {
  it('type a handler by its table: misspelt columns, foreign option values and undeclared image columns do not compile', {
    timeout: 120_000,
  }, async () => {
    expectErrors(await compile('typed', true), 'typed');
  });

  it('without the generated module the same handlers compile with the generic types', { timeout: 120_000 }, async () => {
    expectErrors(await compile('generic', false), 'generic');
  });
});
