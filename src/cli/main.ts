import { ApiError } from '../dataverseApi';
import { describeCredentialError, isCredentialError, TokenError } from '../dataverseApi/tokens';
import { definedSettings } from '../settings';
import { FAILURES_USAGE, failuresCommand, REPLAY_USAGE, replayCommand } from './failures';
import { INSPECT_USAGE, inspectCommand } from './inspect';
import { type CommandIO, processIO, UsageError } from './io';
import { RECONCILE_USAGE, reconcileCommand } from './reconcile';
import { REGISTER_USAGE, registerCommand } from './register';
import { SEND_USAGE, sendCommand } from './send';
import { STATUS_USAGE, statusCommand } from './status';
import { explainStorageError } from './storageConnection';
import { TYPES_USAGE, typesCommand } from './types';

type Command = { run: (args: string[], io: CommandIO) => Promise<number>; usage: string };

export const COMMANDS: Record<string, Command> = {
  inspect: { run: inspectCommand, usage: INSPECT_USAGE },
  failures: { run: failuresCommand, usage: FAILURES_USAGE },
  replay: { run: replayCommand, usage: REPLAY_USAGE },
  register: { run: registerCommand, usage: REGISTER_USAGE },
  status: { run: statusCommand, usage: STATUS_USAGE },
  reconcile: { run: reconcileCommand, usage: RECONCILE_USAGE },
  send: { run: sendCommand, usage: SEND_USAGE },
  types: { run: typesCommand, usage: TYPES_USAGE },
};

/** A command's one-line summary: the first sentence of the paragraph under its usage line. */
function summaryOf(usage: string): string {
  const paragraph = (usage.split('\n\n')[1] ?? '').replace(/\s+/g, ' ').trim();
  return /^.*?\.(?=\s|$)/.exec(paragraph)?.[0] ?? paragraph;
}

const USAGE = `Usage: dataverse-webhooks <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(10)} ${summaryOf(command.usage)}`)
  .join('\n')}

Run "dataverse-webhooks <command> --help" for a command's options.`;

/**
 * docs/cli.md, made from the usage texts the commands print for --help, so the reference never
 * says other than the CLI (`npm run docs` writes it; test/docs/cli.test.ts fails when it is stale).
 */
export function cliReference(): string {
  const sections = Object.entries(COMMANDS).map(([name, command]) => `## ${name}\n\n\`\`\`text\n${command.usage}\n\`\`\`\n`);
  return [
    '# CLI reference',
    '',
    "<!-- Generated from the commands' usage texts by `npm run docs`: edit those in src/cli/, not this file. -->",
    '',
    "Run each command as `npx dataverse-webhooks <command>` in the app's folder. Exit codes: 0 success, 1 failure, 2 a usage mistake.",
    'Every error is one line that says what failed and what to do.',
    '',
    '```text',
    USAGE,
    '```',
    '',
    ...sections,
  ].join('\n');
}

/** Runs one CLI command and returns its exit code: 0 success, 1 failure, 2 usage. */
export async function main(argv: string[], given: CommandIO = processIO()): Promise<number> {
  // An empty variable is an unset one (\`AzureWebJobsStorage= npx dataverse-webhooks failures\` falls
  // back to local.settings.json), for every setting a command reads.
  const io: CommandIO = { ...given, env: definedSettings(given.env) };
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
    const { line, code } = describeFailure(error, name, io);
    io.stderr(`${line}\n`);
    return code;
  }
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/**
 * Every error a command ends with becomes one actionable line: what failed and what to do. No
 * stack, no raw service body (OData JSON, storage XML), no secret: the messages built here and in
 * the modules they come from never hold a key, a password or a connection string.
 */
export function describeFailure(error: unknown, command: string, io: CommandIO): { line: string; code: number } {
  const help = `(see "dataverse-webhooks ${command} --help")`;
  if (error instanceof UsageError) return { line: `${oneLine(error.message)} ${help}`, code: 2 };
  if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
    // node:util parseArgs: "Unknown option '--x'. To specify a positional argument starting with a '-', …"
    return { line: `${oneLine(error.message.split('. ')[0] ?? error.message)} ${help}`, code: 2 };
  }
  if (error instanceof Error && 'code' in error && error.code === 'ENOENT')
    return { line: `No such file: ${(error as NodeJS.ErrnoException).path ?? ''}`, code: 1 };
  const storage = explainStorageError(error, io);
  if (storage) return { line: storage, code: 1 };
  if (error instanceof TokenError) return { line: error.message, code: 1 };
  if (isCredentialError(error)) return { line: describeCredentialError(error, 'Azure'), code: 1 };
  if (error instanceof ApiError) return { line: oneLine(error.message) + apiHint(error), code: 1 };
  return { line: oneLine(error instanceof Error ? error.message : String(error)).slice(0, 500), code: 1 };
}

function apiHint(error: ApiError): string {
  if (error.status === 401) return ': the token was refused; sign in again ("az login") with an identity of this tenant';
  if (error.status === 403)
    return ': the signed-in identity lacks a privilege; it needs a Dataverse security role such as System Customizer (and, for --key-from-azure, the listkeys action on the Function App)';
  return '';
}
