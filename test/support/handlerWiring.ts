import { readdirSync } from 'node:fs';
import path from 'node:path';
import { type HandlerDefinition, isHandlerDefinition } from '../../src/handlerApi/declarations';
import { definitionsOf } from '../../src/handlerApi/load';

/** The files of a handlers folder that may declare handlers: not the list itself, tests, or a generated table module. */
export function handlerSourceFiles(folder: string): string[] {
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter(
      (entry) => entry.isFile() && /\.(ts|mts|cts)$/.test(entry.name) && !/(\.test|\.test-d|\.d|\.generated)\.[mc]?ts$/.test(entry.name),
    )
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => path.relative(folder, file) !== 'index.ts')
    .sort();
}

/**
 * Each file of the folder that declares handlers its index.ts does not list (a forgotten line would
 * silently drop the handler, and its step from `register`): one line per file, naming the handlers.
 */
export async function unlistedHandlers(folder: string, root: string): Promise<string[]> {
  const { handlerFiles } = (await import(path.join(folder, 'index.ts'))) as { handlerFiles: readonly unknown[] };
  const listed = new Set<HandlerDefinition>(
    handlerFiles.flatMap((entry) =>
      isHandlerDefinition(entry) ? [entry] : typeof entry === 'object' && entry !== null ? definitionsOf(entry) : [],
    ),
  );
  const problems: string[] = [];
  for (const file of handlerSourceFiles(folder)) {
    const missing = definitionsOf((await import(file)) as object).filter((definition) => !listed.has(definition));
    if (missing.length > 0) {
      const names = missing.map((definition) => definition.options.name ?? '(unnamed)').join(', ');
      problems.push(
        `${path.relative(root, file)} declares ${names}, and ${path.relative(root, path.join(folder, 'index.ts'))} does not list it: add it to handlerFiles`,
      );
    }
  }
  return problems;
}
