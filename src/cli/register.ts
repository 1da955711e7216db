import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DerivedStep } from '../dataverse/steps';
import { stepName } from '../dataverse/steps';
import { FUNCTION_NAMES } from '../functionNames';
import type { HandlerRegistry } from '../pipeline/handlerRegistry';
import { settingsAuthValue } from '../registration/authValue';
import { checkColumnsAgainstCatalog, checkColumnsAgainstOrganization } from '../registration/columns';
import { loadRegistration, type Registration, webhookUrlProblem } from '../registration/definition';
import { type FunctionKeyLocation, fetchFunctionKey } from '../registration/functionKeys';
import { MASKED, planRegistration, type RegistrationPlan, type StepOutcome } from '../registration/register';
import { type HandlersSource, loadAppHandlers, resolveHandlers } from './appHandlers';
import { enableTrackingWhereOff, type TableTracking, trackingOffLines, trackingOfReconciledTables } from './changeTracking';
import {
  AUTHENTICATION_HELP,
  AZURE_DEPENDENCIES,
  type ConnectionDependencies,
  connectToDataverse,
  ORG_OPTION_HELP,
  organizationUrl,
} from './dataverseConnection';
import { type GeneratedTables, loadGeneratedTables } from './generatedTables';
import { type CommandIO, UsageError } from './io';

export const DEFAULT_REGISTRATION_FILE = path.join('registration', 'webhook.json');

export const REGISTER_USAGE = `Usage: dataverse-webhooks register [--plan] [--file FILE] [--org URL] [--url URL] [key options] [--rotate-key] [--prune] [--enable-change-tracking] [--dry-run] [--json]

Creates or updates the Dataverse webhook and the steps and images its handlers declare.

The steps come from the handlers (on(…) in src/handlers/): handlers on the same table, message,
stage and mode share one step, with the union of their filtering attributes and image columns.
The file gives the endpoint: its name, URL and authentication type. Each step is found by its
table, message, stage and mode, each image by alias; the difference is printed, then only what
differs is written, so running it again writes nothing.

  --plan           print the steps and images the handlers need, from the code alone: no
                   sign-in, nothing read or written
  --file FILE      the registration file (default: ${DEFAULT_REGISTRATION_FILE})
${ORG_OPTION_HELP}
  --url URL        the function's https URL, without ?code= (default: endpoint.url in the file)
  --prune          delete the endpoint's steps that no handler declares (kept otherwise)
  --rotate-key     write the key/settings even though the endpoint exists (Dataverse never
                   returns them, so a new key cannot be detected): use it after adding a key
  --enable-change-tracking
                   turn change tracking on for the tables handlers reconcile (reconcile in on(…)),
                   where it is off: it changes the table's definition (and publishes it), and Dataverse
                   cannot turn it off again. Without it, register only says which tables lack it
  --dry-run        read Dataverse and print the difference and every write it would send
                   (secrets masked), and send no write
  --json           print the result as JSON

Key options (a WebhookKey endpoint needs its function key when it is created or rotated):
  --key KEY                 the function key itself
  --key-from-azure          read it from the function app through Azure Resource Manager, with
    --subscription ID       (default: AZURE_SUBSCRIPTION_ID)
    --resource-group NAME   (default: AZURE_RESOURCE_GROUP)
    --app NAME              the function app (default: AZURE_FUNCTION_APP_NAME)
    --function NAME         whose keys to read (default: ${FUNCTION_NAMES.webhook}); --host-key reads the host's keys
    --key-name NAME         which key (default: default)
HttpHeader and HttpQueryString values come from the environment variables the file names.

${AUTHENTICATION_HELP}`;

const REGISTER_OPTIONS = {
  plan: { type: 'boolean', default: false },
  file: { type: 'string' },
  org: { type: 'string' },
  url: { type: 'string' },
  key: { type: 'string' },
  'key-from-azure': { type: 'boolean', default: false },
  subscription: { type: 'string' },
  'resource-group': { type: 'string' },
  app: { type: 'string' },
  function: { type: 'string' },
  'host-key': { type: 'boolean', default: false },
  'key-name': { type: 'string', default: 'default' },
  'rotate-key': { type: 'boolean', default: false },
  prune: { type: 'boolean', default: false },
  'enable-change-tracking': { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

type RegisterArguments = ReturnType<typeof parseArgs<{ options: typeof REGISTER_OPTIONS; allowPositionals: false }>>['values'];

export function createRegisterCommand(
  dependencies: ConnectionDependencies,
  handlerSource: HandlersSource = loadAppHandlers,
  generatedTables: () => GeneratedTables | null = loadGeneratedTables,
) {
  return async function registerCommand(args: string[], io: CommandIO): Promise<number> {
    const { values } = parseArgs({ args, allowPositionals: false, options: REGISTER_OPTIONS });
    // Everything that can be checked is checked here, before any sign-in or request.
    checkArguments(values);
    const file = path.resolve(io.cwd, values.file ?? DEFAULT_REGISTRATION_FILE);
    const registration = await loadRegistration(file);
    const url = values.url ?? registration.endpoint.url;
    const auth = registration.endpoint.auth;
    if (auth.type !== 'WebhookKey' && (values.key !== undefined || values['key-from-azure'])) {
      throw new UsageError(`--key and --key-from-azure are for WebhookKey endpoints; this one is ${auth.type}`);
    }
    // Loaded here, not as the CLI starts: a declaration the registry refuses fails this command in one line.
    const handlers = await resolveHandlers(handlerSource);
    if (values.plan) return printCodePlan(io, values.json, registration, url, handlers, generatedTables());

    if (!url) throw new UsageError(`The webhook URL is neither in ${file} (endpoint.url) nor given with --url`);
    const keyLocation = values['key-from-azure'] ? functionKeyLocation(values, io.env) : undefined;
    // The key is written with --rotate-key whatever exists, so its source must be there now.
    if (values['rotate-key'] && auth.type === 'WebhookKey' && values.key === undefined && !keyLocation) {
      throw new UsageError('--rotate-key writes the function key: pass --key-from-azure, or --key');
    }
    if (values['rotate-key'] && auth.type !== 'WebhookKey') settingsAuthValue(auth, io.env);
    organizationUrl(values.org, io);

    const { client, http, reads } = connectRecordingReads(values, io, dependencies);
    const plan = await planRegistration(client, {
      registration,
      steps: handlers.steps,
      url,
      authValue: authValueOf({
        auth,
        values,
        io,
        keyLocation,
        fetchKey: (location) => fetchFunctionKey(location, { ...http, armUrl: dependencies.armUrl }),
      }),
      rotateKey: values['rotate-key'],
      prune: values.prune,
    });
    // Before any write: the columns the handlers name must be columns of the organization's tables.
    await checkColumnsAgainstOrganization(
      client,
      handlers.all.map((handler) => handler.declaration),
    );
    const tracking = await trackingOfReconciledTables(client, handlers);
    if (values['dry-run']) return printDryRun(io, values, plan, client.organizationUrl, tracking, reads);
    return applyPlan(io, values, plan, client, tracking);
  };
}

/** The combinations of options that cannot work, refused before anything is read. */
function checkArguments(values: RegisterArguments): void {
  if (values.key !== undefined && values['key-from-azure']) throw new UsageError('Pass --key or --key-from-azure, not both');
  if (values['host-key'] && values.function !== undefined) throw new UsageError('Pass --function or --host-key, not both');
  if (values.plan && values['dry-run'])
    throw new UsageError('Pass --plan (the code alone) or --dry-run (compared with Dataverse), not both');
  if (values.url !== undefined) {
    const problem = webhookUrlProblem(values.url);
    if (problem) throw new UsageError(`--url ${problem}`);
  }
}

/** `--plan`: the code alone; the columns are checked against the generated table types, when there are some. */
function printCodePlan(
  io: CommandIO,
  json: boolean,
  registration: Registration,
  url: string | undefined,
  handlers: HandlerRegistry,
  generated: GeneratedTables | null,
): number {
  if (generated)
    checkColumnsAgainstCatalog(
      handlers.all.map((handler) => handler.declaration),
      generated.tables,
      generated.source,
    );
  const columnsChecked = generated
    ? `Columns checked against ${generated.source}.`
    : 'Columns not checked: there are no generated table types ("dataverse-webhooks types" writes them); "register" checks them against the organization.';
  io.stdout(
    json
      ? `${JSON.stringify({ ...codePlan(registration, url, handlers), columnsCheckedAgainst: generated?.source ?? null }, null, 2)}\n`
      : `${formatCodePlan(registration, url, handlers)}${columnsChecked}\n`,
  );
  return 0;
}

/** The Dataverse connection; a dry run still reads (it must know what exists) and lists those reads, so nothing it sent is hidden. */
function connectRecordingReads(values: RegisterArguments, io: CommandIO, dependencies: ConnectionDependencies) {
  const reads: string[] = [];
  const sendFetch = dependencies.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  const recordingFetch = (input: string, init: RequestInit) => {
    reads.push(`${init.method ?? 'GET'} ${readable(input)}`);
    return sendFetch(input, init);
  };
  const connected = connectToDataverse(values.org, io, values['dry-run'] ? { ...dependencies, fetch: recordingFetch } : dependencies);
  return { ...connected, reads };
}

/** The endpoint's secret, read only when a write needs it: the settings' value, --key, or the function key from Azure. */
function authValueOf(source: {
  auth: Registration['endpoint']['auth'];
  values: RegisterArguments;
  io: CommandIO;
  keyLocation: FunctionKeyLocation | undefined;
  fetchKey: (location: FunctionKeyLocation) => Promise<string>;
}): () => Promise<string> {
  const { auth, values, io, keyLocation } = source;
  return async () => {
    if (auth.type !== 'WebhookKey') return settingsAuthValue(auth, io.env);
    if (values.key !== undefined) return values.key;
    if (!keyLocation)
      throw new UsageError(
        'The endpoint needs its function key (new endpoint, new auth type, or --rotate-key): pass --key-from-azure, or --key',
      );
    // A dry run prints the key masked anyway, so it does not call Azure for it.
    if (values['dry-run']) return MASKED;
    return source.fetchKey(keyLocation);
  };
}

function printDryRun(
  io: CommandIO,
  values: RegisterArguments,
  plan: RegistrationPlan,
  organization: string,
  tracking: TableTracking[],
  reads: string[],
): number {
  io.stdout(
    values.json
      ? `${JSON.stringify({ ...planJson(plan), changeTracking: tracking, reads }, null, 2)}\n`
      : `${formatDryRun(plan, organization, reads)}${trackingLines(tracking, values['enable-change-tracking'], true)}`,
  );
  return 0;
}

/** The difference, shown before anything is written; then the writes, and change tracking turned on where asked. */
async function applyPlan(
  io: CommandIO,
  values: RegisterArguments,
  plan: RegistrationPlan,
  client: Parameters<typeof enableTrackingWhereOff>[0],
  tracking: TableTracking[],
): Promise<number> {
  const enableTracking = values['enable-change-tracking'];
  if (!values.json) io.stdout(formatDifference(plan, client.organizationUrl));
  await plan.apply();
  const tracked = enableTracking ? await enableTrackingWhereOff(client, tracking) : tracking;
  if (values.json) io.stdout(`${JSON.stringify({ ...planJson(plan), changeTracking: tracked }, null, 2)}\n`);
  else
    io.stdout(
      `${plan.writes.length === 0 ? 'Nothing to write: Dataverse already matches the handlers.\n' : `${plan.writes.length} write(s) sent.\n`}${trackingLines(tracked, enableTracking, false)}`,
    );
  return 0;
}

export const registerCommand = createRegisterCommand(AZURE_DEPENDENCIES);

/** What register says of change tracking on the reconciled tables (nothing when no handler reconciles). */
function trackingLines(tables: readonly TableTracking[], enable: boolean, dryRun: boolean): string {
  const lines = tables.flatMap((table) => {
    if (table.turnedOn) return [`Change tracking turned on for ${table.table} (its definition was updated and published).`];
    if (table.enabled) return [];
    return dryRun && enable
      ? [`Dry run: change tracking would be turned on for ${table.table} (PUT of its definition, then PublishXml).`]
      : trackingOffLines([table], 'pass --enable-change-tracking to turn it on (it cannot be turned off again)');
  });
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function functionKeyLocation(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): FunctionKeyLocation {
  const required = (option: string, variable: string): string => {
    const value = values[option.slice(2)];
    const resolved = typeof value === 'string' ? value : env[variable];
    if (!resolved) throw new UsageError(`--key-from-azure needs ${option} (or ${variable})`);
    return resolved;
  };
  return {
    subscriptionId: required('--subscription', 'AZURE_SUBSCRIPTION_ID'),
    resourceGroup: required('--resource-group', 'AZURE_RESOURCE_GROUP'),
    app: required('--app', 'AZURE_FUNCTION_APP_NAME'),
    functionName: values['host-key'] ? undefined : typeof values.function === 'string' ? values.function : FUNCTION_NAMES.webhook,
    keyName: typeof values['key-name'] === 'string' ? values['key-name'] : 'default',
  };
}

function readable(url: string): string {
  try {
    return decodeURIComponent(url);
  } catch {
    return url;
  }
}

/** What the code asks Dataverse for: the endpoint of the file and the steps of the handlers. */
export function codePlan(registration: Registration, url: string | undefined, handlers: HandlerRegistry) {
  const endpointName = registration.endpoint.name;
  const inline = new Set(handlers.inline.map((decider) => decider.name));
  return {
    endpoint: { name: endpointName, auth: registration.endpoint.auth.type, url: url ?? null },
    steps: handlers.steps.map((step) => ({
      name: stepName(endpointName, step),
      table: step.entity,
      message: step.message,
      stage: step.stage,
      mode: step.mode,
      filteringAttributes: step.filteringAttributes,
      images: step.images.map((image) => ({ alias: image.alias, type: image.type, columns: image.columns })),
      handlers: step.handlers,
      inlineHandlers: step.handlers.filter((name) => inline.has(name)),
      notes: stepNotes(step, inline),
      warnings: stepWarnings(step, inline),
    })),
    handlersWithoutStep: handlers.all
      .filter((handler) => !handlers.steps.some((step) => step.handlers.includes(handler.name)))
      .map((handler) => handler.name),
  };
}

/** Advice on a step, from Microsoft's guidance; never a reason to refuse it. */
function stepNotes(step: DerivedStep, inline: ReadonlySet<string>): string[] {
  const notes: string[] = [];
  if (step.message === 'Update' && step.filteringAttributes === null) {
    notes.push('no filtering attributes: every Update of the table is sent (Microsoft recommends filtering attributes on Update steps)');
  }
  for (const image of step.images)
    if (image.columns === null)
      notes.push(`image "${image.alias}" holds every column: a larger payload, nearer the 256 KB Dataverse truncates at`);
  const deciding = step.handlers.filter((name) => inline.has(name));
  if (deciding.length > 0) {
    const which = step.filteringAttributes ? ` that sets ${step.filteringAttributes.join(' or ')}` : '';
    notes.push(
      `every ${step.message} of ${step.entity}${which} waits for this app's answer (inline: ${deciding.join(', ')}); a rejection, a failure or a time-out fails the person's save`,
    );
    // "Avoid cancelling an operation here. Canceling will trigger a rollback of the transaction and
    // have significant performance impact." (the PreOperation stage, event-framework#event-execution-pipeline)
    if (step.stage !== 'PreValidation')
      notes.push(
        `a rejection in ${step.stage} rolls the database transaction back; Microsoft recommends cancelling in PreValidation, before the transaction`,
      );
  }
  return notes;
}

/**
 * What the handlers on a step may get wrong: reacting handlers (queued, run after the answer) on a
 * synchronous step react to an operation that is not committed yet. PreOperation and a
 * synchronous PostOperation run "within the database transaction", which a later step or plug-in
 * can still roll back; PreValidation runs before the operation (its security checks included) and
 * inside the transaction of any operation that triggers it. An asynchronous PostOperation step
 * runs after the commit. https://learn.microsoft.com/power-apps/developer/data-platform/event-framework#event-execution-pipeline
 */
function stepWarnings(step: DerivedStep, inline: ReadonlySet<string>): string[] {
  const reacting = step.handlers.filter((name) => !inline.has(name));
  if (step.mode !== 'Synchronous' || reacting.length === 0) return [];
  const where =
    step.stage === 'PreValidation'
      ? 'before the operation (and inside the transaction of any operation that triggers it)'
      : 'inside the operation’s database transaction';
  return [
    `reacting handlers ${reacting.join(', ')} run from the queue, and this synchronous step runs ${where}: a later step or plug-in can still fail the operation and roll it back, so they may react to a save that never happened. Unless they must block the save, declare them on an asynchronous PostOperation step, which Dataverse runs after the commit`,
  ];
}

export function formatCodePlan(registration: Registration, url: string | undefined, handlers: HandlerRegistry): string {
  const plan = codePlan(registration, url, handlers);
  const lines = [`Endpoint "${plan.endpoint.name}" (${plan.endpoint.auth}) at ${plan.endpoint.url ?? 'the URL given with --url'}`];
  lines.push(plan.steps.length === 0 ? 'The handlers declare no step.' : `${plan.steps.length} step(s) from the handlers:`);
  for (const step of plan.steps) {
    lines.push(`  step "${step.name}"`);
    lines.push(
      `    ${step.table} ${step.message}, ${step.stage}, ${step.mode}${step.mode === 'Asynchronous' ? ', deletes its succeeded System Jobs' : ''}`,
    );
    if (step.filteringAttributes) lines.push(`    filtering attributes: ${step.filteringAttributes.join(',')}`);
    for (const image of step.images)
      lines.push(`    image "${image.alias}": ${image.type} of ${image.columns ? image.columns.join(',') : 'every column'}`);
    lines.push(`    handlers: ${step.handlers.map((name) => (step.inlineHandlers.includes(name) ? `${name} (inline)` : name)).join(', ')}`);
    for (const note of step.notes) lines.push(`    note: ${note}`);
    for (const warning of step.warnings) lines.push(`    warning: ${warning}`);
  }
  if (plan.handlersWithoutStep.length > 0)
    lines.push(`Handlers for "*" register no step; they receive the events of the steps above: ${plan.handlersWithoutStep.join(', ')}`);
  lines.push('Nothing was read or written. "register --dry-run" compares this with Dataverse.');
  return `${lines.join('\n')}\n`;
}

function describeStep(outcome: StepOutcome): string {
  const handlers = outcome.handlers.length > 0 ? ` for ${outcome.handlers.join(', ')}` : '';
  const changes = outcome.changes.length > 0 ? ` (${outcome.changes.join('; ')})` : '';
  if (outcome.action === 'keep') return `keep step "${outcome.name}": no handler declares it (--prune deletes it)`;
  if (outcome.action === 'delete') return `delete step "${outcome.name}": no handler declares it`;
  return `${outcome.action} step "${outcome.name}"${handlers}${changes}`;
}

/** The difference between Dataverse and the code, one line per row. */
export function formatDifference(plan: RegistrationPlan, organization: string): string {
  const endpoint = `${plan.endpoint.action} endpoint "${plan.endpoint.name}"${plan.endpoint.id ? ` [${plan.endpoint.id}]` : ''}${plan.endpoint.changes.length > 0 ? ` (${plan.endpoint.changes.join('; ')})` : ''}`;
  const lines = [`${organization}:`, `  ${endpoint}`, ...plan.steps.map((step) => `  ${describeStep(step)}`)];
  if (plan.steps.length === 0) lines.push('  (the handlers declare no step)');
  return `${lines.join('\n')}\n`;
}

function formatDryRun(plan: RegistrationPlan, organization: string, reads: string[]): string {
  const lines = [
    formatDifference(plan, organization).trimEnd(),
    '',
    `Dry run: read Dataverse with ${reads.length} request(s):`,
    ...reads,
    '',
  ];
  lines.push(
    plan.writes.length === 0
      ? 'Dry run: nothing to write.'
      : `Dry run: nothing was written. ${plan.writes.length} request(s) would be sent:`,
  );
  for (const write of plan.writes) {
    lines.push(`${write.method} ${write.url}`);
    if (write.body) lines.push(`  ${JSON.stringify(write.body)}`);
  }
  return `${lines.join('\n')}\n`;
}

function planJson(plan: RegistrationPlan) {
  return { endpoint: plan.endpoint, steps: plan.steps, writes: plan.writes };
}
