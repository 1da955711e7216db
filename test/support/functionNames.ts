import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The functions the app registers, by name, read from the source of src/functions (each file's
 * top-level `app.http('name'…)`, `app.storageQueue('name'…)`, `app.timer('name'…)`): what the Node
 * worker must index from a deployed package, whatever functions are added.
 */
export function registeredFunctionNames(root: string): string[] {
  const folder = path.join(root, 'src', 'functions');
  return readdirSync(folder)
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .flatMap((file) => [...readFileSync(path.join(folder, file), 'utf8').matchAll(/^app\.\w+\('([^']+)'/gm)].map((match) => match[1]!))
    .sort();
}
