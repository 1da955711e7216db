import { execFile } from 'node:child_process';
import { cpSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/** The project's folder. */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/** The files git would take: the project as committed plus what is not yet (and is not ignored). */
export async function projectFiles(): Promise<string[]> {
  const { stdout } = await promisify(execFile)('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: PROJECT_ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.split('\0').filter(Boolean);
}

/**
 * A copy of the project as committed plus what is not yet (the files git would take), without its
 * build, at <dir>/app: nothing beside it, as on a user's clone. node_modules is linked.
 */
export async function copyOfProject(dir: string): Promise<string> {
  const copy = path.join(dir, 'app');
  for (const file of await projectFiles()) {
    try {
      cpSync(path.join(PROJECT_ROOT, file), path.join(copy, file));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // deleted, not yet committed
    }
  }
  symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  return copy;
}
