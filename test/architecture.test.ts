import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layers, as rules a change cannot break unnoticed (the CAMS backend keeps the same kind with
 * dependency-cruiser; plain imports are enough to read here). Each file's imports are read from
 * its text: `from '…'` and `require('…')`.
 */
const root = path.resolve(__dirname, '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}

interface Import {
  file: string;
  /** A repository path (src/pipeline/ledger/ledger) for relative imports, the package name otherwise. */
  target: string;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  // Not a word inside a string: src/dataverse/knownNames.ts lists a table named 'import'.
  const specifiers = [...text.matchAll(/(?<!['\w])(?:from|import|require\()\s*'([^']+)'/g)].map((match) => match[1]!);
  return specifiers.map((specifier) => ({
    file,
    target: specifier.startsWith('.') ? path.relative(root, path.resolve(path.dirname(path.join(root, file)), specifier)) : specifier,
  }));
}

const src = sourceFiles('src');
const imports = src.flatMap(importsOf);
const layerOf = (target: string) => /^src\/([^/.]+)/.exec(target)?.[1] ?? null;
const violations = (fromLayer: string, allowed: (target: string) => boolean) =>
  imports.filter((edge) => layerOf(edge.file) === fromLayer && !allowed(edge.target)).map((edge) => `${edge.file} → ${edge.target}`);

describe('the layers', () => {
  it('read the import graph (a rule that sees nothing would pass anything)', () => {
    expect(src.length).toBeGreaterThan(50);
    expect(imports.some((edge) => edge.file === 'src/pipeline/process.ts' && edge.target === 'src/pipeline/ledger/ledger')).toBe(true);
  });

  it('the Dataverse model is usable alone: no Azure, no other layer of the app', () => {
    expect(
      violations('dataverse', (target) => target.startsWith('src/dataverse') || target === 'zod' || target.startsWith('node:')),
    ).toEqual([]);
  });

  it('@azure/functions is used only by the function registrations, the app entry point and the invocation log', () => {
    const users = imports.filter((edge) => edge.target === '@azure/functions').map((edge) => edge.file);
    expect(users.filter((file) => !/^src\/(functions\/|index\.ts$|observability\/log\.ts$)/.test(file))).toEqual([]);
  });

  it('nothing in the app depends on the function registrations, or on the development host (tests, the bench and npm start do)', () => {
    const inbound = (layer: string) =>
      imports
        .filter((edge) => layerOf(edge.target) === layer && layerOf(edge.file) !== layer)
        .map((edge) => `${edge.file} → ${edge.target}`);
    expect(inbound('functions')).toEqual([]);
    expect(imports.filter((edge) => edge.target.startsWith('devhost')).map((edge) => `${edge.file} → ${edge.target}`)).toEqual([]);
  });

  it('storage knows nothing of the pipeline, and the pipeline nothing of Azure Functions, handlers or the CLI', () => {
    expect(violations('storage', (target) => !/^src\/(pipeline|functions|handlers|cli)\//.test(target))).toEqual([]);
    expect(violations('pipeline', (target) => !/^src\/(functions|handlers|cli)\//.test(target) && target !== '@azure/functions')).toEqual(
      [],
    );
  });

  it('the HTTP path (accept, decide) does not depend on the queue path (process): what both need is shared', () => {
    const httpPath = ['src/pipeline/accept.ts', 'src/pipeline/decide.ts'];
    expect(
      imports.filter((edge) => httpPath.includes(edge.file) && edge.target === 'src/pipeline/process').map((edge) => edge.file),
    ).toEqual([]);
    expect(imports.some((edge) => edge.file === 'src/pipeline/decide.ts' && edge.target === 'src/pipeline/handlerContext')).toBe(true);
  });

  it('every queue message the app writes goes through storage/queueMessages.ts (encoding, no expiry, a queue that exists)', () => {
    const writers = src.filter((file) => /\.sendMessage\(/.test(readFileSync(path.join(root, file), 'utf8')));
    expect(writers).toEqual(['src/storage/queueMessages.ts']);
  });
});
