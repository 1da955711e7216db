import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { type DataverseEvent, parseDataverseWebhook } from '../dataverse';
import { formatIssue, issueList } from '../dataverse/issues';
import { closestName } from '../dataverse/knownNames';
import { LOCAL_WEBHOOK_URL } from '../functionNames';
import type { HandlerRegistry } from '../pipeline/handlerRegistry';
import { type HandlersSource, loadAppHandlers, resolveHandlers } from './appHandlers';
import { type CommandIO, parseHeaderOption, readInput, UsageError } from './io';
import { fileWebhookRequest, generatedWebhookRequest, type StepMode, truncated, type WebhookRequestToSend } from './webhookRequest';

export const SEND_USAGE = `Usage: dataverse-webhooks send [FILE|-] [--url URL] [--code KEY] [options]

Posts a Dataverse webhook request (a payload file, or one generated from options) and prints the status, eventId and latency.

  --url URL                  where to post (default ${LOCAL_WEBHOOK_URL})
  --code KEY                 function key, sent as ?code= (a WebhookKey registration)
  --header "name: value"     a header to add (an HttpHeader registration); repeatable
  --query name=value         a query parameter to add (an HttpQueryString registration); repeatable
  --organization HOST        x-ms-dynamics-organization (default: from the body, else contoso.crm.dynamics.com)
  --truncated                remove ParentContext, InputParameters, PreEntityImages and PostEntityImages
                             and send x-ms-dynamics-msg-size-exceeded, as Dataverse does above 256 KB
  --timeout SECONDS          give up after this long (default 60, as Dataverse)

Without FILE, the body is generated:
  --entity NAME              table logical name (default account)
  --message NAME             Create, Update, Delete, CreateMultiple, UpdateMultiple, ... (default Update)
  --id GUID                  the record id (default: a new one); repeat it for each record of a
                             CreateMultiple or UpdateMultiple
  --records N                how many records a CreateMultiple or UpdateMultiple has (default 2):
                             Targets is an EntityCollection of them, and a CreateMultiple returns their Ids
  --attribute name=value     a column of the Target (of every record of Targets); name:type=value
                             for other types: int, decimal, bool, money, choice, date (ISO 8601),
                             lookup (table/GUID), null
  --pre-image alias:name=value   a column of the pre-image registered as alias (repeat per column;
                             alias:name:type=value as for --attribute)
  --post-image alias:name=value  the same for a post-image (PostOperation only)
  --stage 10|20|40           PreValidation, PreOperation, PostOperation (default 40)
  --mode sync|async          default: async in stage 40, sync before it (async runs only in stage 40)

A synchronous step (stage 10 or 20, or --mode sync) is decided by the app's inline handlers
(decide(…)) before the answer: a rejection prints the handler and its reason.

send reads the app's handlers (src/handlers, built) as register --plan does, to say what the app
did: a line when no handler takes the event (it is acknowledged and nothing runs), and, when the
app answers 503 because its handlers do not load, which handler and why.

Exits 0 on a 2xx, 1 on any other status or when the URL cannot be reached, 2 on a usage mistake.`;

const GENERATION_OPTIONS = ['entity', 'message', 'id', 'records', 'attribute', 'pre-image', 'post-image', 'stage', 'mode'] as const;

/** The parts of the app's answer worth printing: identifiers and reasons, never a payload value. */
const answerSchema = z.object({
  eventId: z.string().optional().catch(undefined),
  error: z.string().optional().catch(undefined),
  handler: z.string().optional().catch(undefined),
  code: z.string().optional().catch(undefined),
  message: z.string().optional().catch(undefined),
  decisions: z
    .array(z.object({ handler: z.string(), outcome: z.string() }))
    .optional()
    .catch(undefined),
  issues: z
    .array(z.object({ path: z.string(), message: z.string() }))
    .optional()
    .catch(undefined),
});

/** send, reading the handlers from `handlers` (the app's own, loaded when an answer needs them). */
export function createSendCommand(handlers: HandlersSource = loadAppHandlers): (args: string[], io: CommandIO) => Promise<number> {
  return (args, io) => send(args, io, handlers);
}

export const sendCommand = createSendCommand();

const SEND_OPTIONS = {
  url: { type: 'string' },
  code: { type: 'string' },
  header: { type: 'string', multiple: true, short: 'H' },
  query: { type: 'string', multiple: true },
  organization: { type: 'string' },
  truncated: { type: 'boolean' },
  timeout: { type: 'string' },
  entity: { type: 'string' },
  message: { type: 'string' },
  id: { type: 'string', multiple: true },
  records: { type: 'string' },
  attribute: { type: 'string', multiple: true },
  'pre-image': { type: 'string', multiple: true },
  'post-image': { type: 'string', multiple: true },
  stage: { type: 'string' },
  mode: { type: 'string' },
} as const;

type SendArguments = ReturnType<typeof parseArgs<{ options: typeof SEND_OPTIONS; allowPositionals: true }>>['values'];

/** What the app answered, and how long it took. */
interface Answered {
  response: Response;
  answer: z.infer<typeof answerSchema>;
  latencyMs: number;
}

async function send(args: string[], io: CommandIO, handlers: HandlersSource): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: SEND_OPTIONS });
  if (positionals.length > 1) throw new UsageError('send takes at most one file (or - for stdin)');
  const file = positionals[0];
  const timeoutSeconds = checkArguments(values, file);
  const url = targetUrl(values.url ?? LOCAL_WEBHOOK_URL, values.code, values.query ?? []);
  const request = await requestToSend(values, file, io);
  const headers = new Headers(request.headers);
  for (const header of values.header ?? []) headers.set(...parseHeaderOption(header));
  const answered = await post(url, headers, request.body, timeoutSeconds, io);
  if (!answered) return 1;
  const { response, answer, latencyMs } = answered;
  const line = [
    `${response.status} ${response.statusText}`.trim(),
    `eventId ${answer.eventId ?? '-'}`,
    `latency ${latencyMs.toFixed(0)} ms`,
  ];
  if (!response.ok) return reportFailure(io, line, answered, handlers);
  const allowedBy = (answer.decisions ?? []).filter((decision) => decision.outcome === 'allow').map((decision) => decision.handler);
  if (allowedBy.length > 0) line.push(`allowed by ${allowedBy.join(', ')}`);
  io.stdout(`${line.join('  ')}\n`);
  const unhandled = await unhandledLine(request, handlers);
  if (unhandled) io.stdout(`${unhandled}\n`);
  return 0;
}

/** The combinations that cannot work, refused before anything is sent; the timeout, in seconds. */
function checkArguments(values: SendArguments, file: string | undefined): number {
  if (file !== undefined) {
    const generation = GENERATION_OPTIONS.filter((name) => values[name] !== undefined);
    if (generation.length > 0) throw new UsageError(`--${generation.join(', --')} describe a generated body; they do not apply to a file`);
  }
  if (values.mode !== undefined && values.mode !== 'sync' && values.mode !== 'async') throw new UsageError('--mode is sync or async');
  const timeoutSeconds = Number(values.timeout ?? '60');
  if (!(timeoutSeconds > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  if (values.records !== undefined && !/^\d+$/.test(values.records)) throw new UsageError('--records takes a whole number from 1 to 1000');
  return timeoutSeconds;
}

/** The body and headers to send: a file's (or stdin's), or one generated from the options; truncated as Dataverse truncates, when asked. */
async function requestToSend(values: SendArguments, file: string | undefined, io: CommandIO): Promise<WebhookRequestToSend> {
  const organization = values.organization !== undefined ? { organization: values.organization } : {};
  const request =
    file === undefined
      ? generatedWebhookRequest({
          entity: values.entity ?? 'account',
          message: values.message ?? 'Update',
          ...(values.id !== undefined ? { ids: values.id } : {}),
          ...(values.records !== undefined ? { records: Number(values.records) } : {}),
          attributes: values.attribute ?? [],
          preImages: values['pre-image'] ?? [],
          postImages: values['post-image'] ?? [],
          ...(values.stage !== undefined ? { stage: values.stage } : {}),
          ...(values.mode !== undefined ? { mode: values.mode as StepMode } : {}),
          ...organization,
        })
      : fileWebhookRequest(await readInput(file, io), organization);
  return values.truncated ? truncated(request) : request;
}

/** POSTs the body; null (after one line saying why) when the app could not be reached. */
async function post(url: URL, headers: Headers, body: string | Buffer, timeoutSeconds: number, io: CommandIO): Promise<Answered | null> {
  // The URL may carry a key: only its origin and path are ever printed.
  const shownUrl = `${url.origin}${url.pathname}`;
  const started = performance.now();
  try {
    const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    const answer = parseAnswer(await response.text());
    return { response, answer, latencyMs: performance.now() - started };
  } catch (error) {
    io.stderr(`Could not reach ${shownUrl}: ${unreachableReason(error, timeoutSeconds)}\n`);
    if (url.hostname === 'localhost' || url.hostname === '127.0.0.1') io.stderr('Is the app running? Start it with "npm start".\n');
    return null;
  }
}

/** A non-2xx answer, on stderr: its status line, who refused it and why, and the app's issues, each once. */
async function reportFailure(io: CommandIO, line: string[], { response, answer }: Answered, handlers: HandlersSource): Promise<number> {
  io.stderr(`${line.join('  ')}\n`);
  if (response.status === 503 && answer.error === 'handlers-invalid') {
    // The app says only that it is misconfigured; the handlers here say which one, and why.
    const why = await loadFailure(handlers);
    if (why) {
      io.stderr(`${why}\n`);
      return 1;
    }
  }
  // An inline handler's answer names it: "rejected by credit-limit-on-create (credit-limit-exceeded): <reason>".
  const by = answer.handler ? ` by ${answer.handler}${answer.code ? ` (${answer.code})` : ''}` : '';
  // The app's message ends with its issues ("The body is not valid JSON: $: unexpected input at
  // character 27"): the headline alone, then each issue once, on its own line.
  const issues = answer.issues ?? [];
  const suffix = issueList(issues);
  const headline =
    answer.message && suffix && answer.message.endsWith(`: ${suffix}`) ? answer.message.slice(0, -suffix.length - 2) : answer.message;
  if (answer.error || headline) io.stderr(`${[answer.error ? `${answer.error}${by}` : undefined, headline].filter(Boolean).join(': ')}\n`);
  for (const issue of issues) io.stderr(`  ${formatIssue(issue)}\n`);
  return 1;
}

/** The one line a HandlerLoadError is, or null when the handlers load (or cannot be read here at all). */
async function loadFailure(handlers: HandlersSource): Promise<string | null> {
  const loaded = await loadedHandlers(handlers);
  return typeof loaded === 'string' ? loaded : null;
}

/** The handlers; or the one line of the HandlerLoadError they refuse to load with; null when they cannot be read here at all. */
async function loadedHandlers(handlers: HandlersSource): Promise<HandlerRegistry | string | null> {
  try {
    return await resolveHandlers(handlers);
  } catch (error) {
    return error instanceof Error && error.name === 'HandlerLoadError' ? error.message : null;
  }
}

/**
 * What the app did with an accepted event no handler takes: it acknowledged it and ran nothing
 * (counted as unhandled). One line, naming the closest table or message the handlers declare.
 * Null when a handler takes it, or when the handlers cannot be read here.
 */
async function unhandledLine(request: WebhookRequestToSend, handlers: HandlersSource): Promise<string | null> {
  const registry = await loadedHandlers(handlers);
  if (registry === null || typeof registry === 'string') return registry;
  const parsed = parseDataverseWebhook({ body: request.body, headers: request.headers });
  if (!parsed.ok) return null;
  const event = parsed.event;
  if (registry.match(event).length > 0 || registry.decisionsFor(event).length > 0) return null;
  return `No handler takes ${describeEvent(event)}: the app acknowledged it and ran nothing. ${hint(event, registry)}`;
}

function describeEvent(event: DataverseEvent): string {
  const step = [event.stageName, event.mode].filter(Boolean).join(', ');
  return `${event.messageName} of ${event.primaryEntityName}${step ? ` (${step})` : ''}`;
}

/** The likeliest fix: a table or message the handlers declare that is close to the event's. */
function hint(event: DataverseEvent, registry: HandlerRegistry): string {
  const declarations = [...registry.all, ...registry.inline].map((handler) => handler.declaration);
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const tables = [...new Set(declarations.map((declaration) => declaration.entity).filter((entity) => entity !== '*'))];
  const messages = [...new Set(declarations.flatMap((declaration) => declaration.messages).filter((message) => message !== '*'))];
  const plan = 'register --plan lists the steps the handlers take';
  if (declarations.length === 0) return 'The app declares no handler (src/handlers/index.ts)';
  if (!tables.some((table) => same(table, event.primaryEntityName))) {
    const closest = closestName(event.primaryEntityName, tables);
    if (closest) return `Did you mean --entity ${closest}? (${plan})`;
  }
  if (!messages.some((message) => same(message, event.messageName))) {
    const closest = closestName(event.messageName, messages);
    if (closest) return `Did you mean --message ${closest}? (${plan})`;
  }
  return `Its handlers take another table, message, stage, mode or column: ${plan}`;
}

/** The URL to post to. Never echoed: it may carry a key or a password. */
function targetUrl(text: string, code: string | undefined, query: string[]): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url is not a URL (e.g. ${LOCAL_WEBHOOK_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must be http or https');
  if (url.username || url.password)
    throw new UsageError(
      '--url must not carry a user name or password: pass a function key with --code, an HttpHeader value with --header',
    );
  if (code !== undefined) url.searchParams.set('code', code);
  for (const pair of query) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new UsageError('--query expects name=value');
    url.searchParams.append(pair.slice(0, equals), pair.slice(equals + 1));
  }
  return url;
}

function parseAnswer(text: string): z.infer<typeof answerSchema> {
  try {
    return answerSchema.catch({}).parse(JSON.parse(text));
  } catch {
    return {};
  }
}

function unreachableReason(error: unknown, timeoutSeconds: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))
    return `no answer within ${timeoutSeconds} s`;
  // fetch reports "fetch failed" and keeps the socket error as its cause.
  const cause = error instanceof Error ? error.cause : undefined;
  const code = cause instanceof Error && 'code' in cause ? String(cause.code) : undefined;
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    ECONNRESET: 'connection reset',
    EAI_AGAIN: 'host name lookup failed',
  };
  if (code) return reasons[code] ?? code;
  return cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
}
