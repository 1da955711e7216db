import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** What a command touches of the outside world, so tests can run commands in-process. */
export interface CommandIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<Buffer>;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export function processIO(): CommandIO {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    env: process.env,
    cwd: process.cwd(),
  };
}

/** A usage mistake: reported with the command's usage and exit code 2. */
export class UsageError extends Error {}

export async function readInput(file: string, io: CommandIO): Promise<Buffer> {
  if (file === '-') return io.readStdin();
  try {
    return await readFile(path.resolve(io.cwd, file));
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'EISDIR')
      throw new UsageError(`${file} is a folder: give a file (or - for stdin)`);
    throw error;
  }
}

/** `--header "name: value"` → [name, value]. */
export function parseHeaderOption(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UsageError(`--header expects "name: value", got a value without a name`);
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}
