import { failuresCommand, FAILURES_USAGE, replayCommand, REPLAY_USAGE } from './failures';
import { inspectCommand, INSPECT_USAGE } from './inspect';
import { processIO, UsageError, type CommandIO } from './io';
import { registerCommand, REGISTER_USAGE } from './register';
import { statusCommand, STATUS_USAGE } from './status';
import { sendCommand, SEND_USAGE } from './send';

type Command = { run: (args: string[], io: CommandIO) => Promise<number>; usage: string };

const COMMANDS: Record<string, Command> = {
  inspect: { run: inspectCommand, usage: INSPECT_USAGE },
  failures: { run: failuresCommand, usage: FAILURES_USAGE },
  replay: { run: replayCommand, usage: REPLAY_USAGE },
  register: { run: registerCommand, usage: REGISTER_USAGE },
  status: { run: statusCommand, usage: STATUS_USAGE },
  send: { run: sendCommand, usage: SEND_USAGE },
};

const USAGE = `Usage: dataverse-webhooks <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(10)} ${command.usage.split('\n')[2] ?? ''}`)
  .join('\n')}

Run "dataverse-webhooks <command> --help" for a command's options.`;

/** Runs one CLI command and returns its exit code: 0 success, 1 failure, 2 usage. */
export async function main(argv: string[], io: CommandIO = processIO()): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    io.stdout(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`Unknown command "${name}".\n\n${USAGE}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      io.stderr(`${error.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (error instanceof Error && 'code' in error && error.code === 'ENOENT') {
      io.stderr(`No such file: ${(error as NodeJS.ErrnoException).path ?? ''}\n`);
      return 1;
    }
    io.stderr(`${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
