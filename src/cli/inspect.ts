import { parseArgs } from 'node:util';
import { parseDataverseWebhook } from '../dataverse';
import { type CommandIO, parseHeaderOption, readInput, UsageError } from './io';

export const INSPECT_USAGE = `Usage: dataverse-webhooks inspect <file|-> [--header "name: value"]...

Prints the normalized event a handler would receive for a webhook body (a file, or - for stdin),
as JSON. Headers are the x-ms-* headers Dataverse sends, e.g.
  --header "x-ms-dynamics-msg-size-exceeded: true"`;

export async function inspectCommand(args: string[], io: CommandIO): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { header: { type: 'string', multiple: true, short: 'H' } },
  });
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one file (or - for stdin)');
  const headers = new Headers();
  for (const header of values.header ?? []) headers.append(...parseHeaderOption(header));

  const body = await readInput(positionals[0]!, io);
  const result = parseDataverseWebhook({ body, headers });
  if (!result.ok) {
    io.stderr(`${result.error.message}\n`);
    return 1;
  }
  io.stdout(`${JSON.stringify(result.event, null, 2)}\n`);
  return 0;
}
