import type { CommandIO } from '../../src/cli/io';

export interface CapturedIO extends CommandIO {
  out: () => string;
  err: () => string;
}

export function captureIO(options: { stdin?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): CapturedIO {
  let out = '';
  let err = '';
  return {
    stdout: (text) => {
      out += text;
    },
    stderr: (text) => {
      err += text;
    },
    readStdin: async () => Buffer.from(options.stdin ?? ''),
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    out: () => out,
    err: () => err,
  };
}
