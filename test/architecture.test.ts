import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layer rules have one owner, .dependency-cruiser.cjs, which `npm run lint` (the first phase of
 * `npm test`) runs on every import of every folder. This file does not check them again: it checks
 * that the documentation states exactly those rules, that no folder of code escapes them, and the
 * few rules of the code that are not about imports.
 */
const root = path.resolve(__dirname, '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

interface ForbiddenRule {
  name: string;
  comment?: string;
}
const { forbidden } = require(path.join(root, '.dependency-cruiser.cjs')) as { forbidden: ForbiddenRule[] };

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}

describe('the layers', () => {
  it('docs/architecture.md lists every rule dependency-cruiser keeps, and no other', () => {
    const section = read('docs/architecture.md').split('## The layers, and what keeps them')[1] ?? '';
    const documented = [...section.matchAll(/^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|/gm)].flatMap((row) =>
      [...row[1]!.matchAll(/`([a-z-]+)`/g)].map((name) => name[1]!),
    );
    expect(documented.sort()).toEqual(forbidden.map((rule) => rule.name).sort());
  });

  it('every rule says why it exists: its comment is the message a broken import gets', () => {
    expect(forbidden.filter((rule) => !rule.comment?.trim()).map((rule) => rule.name)).toEqual([]);
  });

  it('npm run lint cruises every top-level folder that holds TypeScript', () => {
    const lint = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['lint'] ?? '';
    const cruised = /depcruise ([\w ]+?) --config/.exec(lint)?.[1]?.split(' ') ?? [];
    const folders = readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && !['node_modules', 'dist'].includes(entry.name) && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
      .filter((folder) => sourceFiles(folder).length > 0);
    expect(cruised.sort()).toEqual(folders.sort());
  });
});

describe('one way to do each thing', () => {
  const app = [...sourceFiles('src'), ...sourceFiles('devhost')].filter((file) => !file.endsWith('.test.ts'));

  it('every queue message the app writes goes through storage/queueMessages.ts (encoding, no expiry, a queue that exists)', () => {
    const writers = sourceFiles('src').filter((file) => /\.sendMessage\(/.test(read(file)));
    expect(writers).toEqual(['src/storage/queueMessages.ts']);
  });

  it('every zod error is put into words by src/dataverse/issues.ts (paths as JSON paths, payload members by position)', () => {
    const formatters = app.filter((file) => /\.error\.issues|issue\.path\.join|\$\{issue\.path\}/.test(read(file)));
    expect(formatters).toEqual(['src/dataverse/issues.ts']);
  });
});
