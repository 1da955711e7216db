import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanChildEnv, runToExit } from './support/childProcess';
import { copyOfProject, PROJECT_ROOT, projectFiles } from './support/projectCopy';
import { useTempDirs } from './support/tempDirs';

/**
 * The suite reads nothing outside the repository: a user's clone has nothing beside it (no
 * ../shared), and `npm test` must pass there. Two checks, each able to fail:
 *  - the sources of the tests and their support name no path that leaves the project: every
 *    `path.join`/`path.resolve` of `__dirname` and string literals is resolved from its file, and
 *    no string names the team's shared folder;
 *  - the tests that read the real data the project ships run in a copy of the project with nothing
 *    beside it, with a preload (test/support/outsideReads.cjs) that records every file-system path
 *    outside the project: none may be recorded. A probe test in the copy reads ../shared, and must
 *    be the only one recorded, which shows the recording works.
 */
const tempDir = useTempDirs();
/** The tests that read what samples/ ships: payloads, and the table definitions. */
const DATA_TESTS = [
  'test/samples.test.ts',
  'test/dataverse/realPayloads.test.ts',
  'test/dataverse/normalizedFixtures.test.ts',
  'src/handlers',
];

async function testSources(): Promise<string[]> {
  return (await projectFiles()).filter((file) =>
    /^(test|devhost\/test|bench)\/.*\.(ts|cts|mts|cjs|mjs|js)$|^src\/.*\.test\.ts$|^vitest\.config\.mts$/.test(file),
  );
}

/** The checks that name ../shared to look for it: this file, the preload, and the docs' link check. */
const CHECKERS = new Set(['test/selfContained.test.ts', 'test/support/outsideReads.cjs', 'test/docs/links.test.ts']);

/**
 * The paths a source builds from __dirname and literals alone that end outside the project, and
 * the strings that name shared/. The bench runs compiled, from dist/bench.
 */
export function pathsLeavingProject(file: string, text: string): string[] {
  const found: string[] = [];
  const dir = path.dirname(path.join(PROJECT_ROOT, file.startsWith('bench/') ? path.join('dist', file) : file));
  for (const match of text.matchAll(/path\.(?:join|resolve)\(\s*__dirname((?:\s*,\s*'[^']*')*)\s*\)/g)) {
    const parts = [...match[1]!.matchAll(/'([^']*)'/g)].map((part) => part[1]!);
    const resolved = path.resolve(dir, ...parts);
    if (resolved !== PROJECT_ROOT && !resolved.startsWith(PROJECT_ROOT + path.sep)) found.push(match[0]);
  }
  for (const match of text.matchAll(/['"`][^'"`\n]*(?:\.\.\/shared\b|\/work\/shared\b)[^'"`\n]*['"`]/g)) found.push(match[0]);
  return found;
}

describe('the suite reads nothing outside the repository', () => {
  it('no test source builds a path that leaves the project', async () => {
    // The check itself finds what it must: the form the suite once used, and a literal.
    expect(pathsLeavingProject('test/support/fixtures.ts', "path.resolve(__dirname, '..', '..', '..', 'shared')")).toHaveLength(1);
    expect(pathsLeavingProject('test/x.test.ts', "readFileSync('../shared/table-definitions/account.json')")).toHaveLength(1);
    expect(pathsLeavingProject('test/support/fixtures.ts', "path.resolve(__dirname, '..', '..', 'samples')")).toEqual([]);
    const sources = await testSources();
    expect(sources).toContain('test/support/realTableDefinitions.ts');
    const leaving = sources
      .filter((file) => !CHECKERS.has(file))
      .flatMap((file) =>
        pathsLeavingProject(file, readFileSync(path.join(PROJECT_ROOT, file), 'utf8')).map((found) => `${file}: ${found}`),
      );
    expect(leaving).toEqual([]);
  });

  it('the tests of the shipped data pass in a copy with nothing beside it, and read nothing outside it', async () => {
    const copy = await copyOfProject(tempDir('self-contained-'));
    const log = path.join(tempDir('outside-reads-'), 'reads.log');
    writeFileSync(log, '');
    const probe = 'test/outsideProbe.test.ts';
    writeFileSync(
      path.join(copy, probe),
      `import { existsSync } from 'node:fs';\nimport path from 'node:path';\nimport { expect, it } from 'vitest';\nit('probe', () => expect(existsSync(path.join(__dirname, '..', '..', 'shared', 'probe'))).toBe(false));\n`,
    );
    const env = cleanChildEnv({
      NODE_OPTIONS: `--require ${path.join(copy, 'test', 'support', 'outsideReads.cjs')}`,
      OUTSIDE_READS_LOG: log,
      OUTSIDE_READS_ROOT: copy,
    });
    const result = await runToExit(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...DATA_TESTS, probe], { cwd: copy, env });
    expect(result.code, `${result.stdout}\n${result.stderr}`.slice(-4000)).toBe(0);
    expect(result.stdout).toMatch(/Test Files\s+\d+ passed/);
    const reads = [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))];
    expect(reads).toEqual([path.join(path.dirname(copy), 'shared', 'probe')]);
  }, 120_000);
});
