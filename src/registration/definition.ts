import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/**
 * The declarative registration file (`registration/webhook.json`): which endpoint Dataverse posts
 * to and which steps and images feed it. It holds no secret: a WebhookKey comes from `--key` or
 * from Azure, and HttpHeader / HttpQueryString values from the environment variables it names.
 */

export const STAGES = { PreValidation: 10, PreOperation: 20, PostOperation: 40 } as const;
export const MODES = { Synchronous: 0, Asynchronous: 1 } as const;
export const IMAGE_TYPES = { PreImage: 0, PostImage: 1, Both: 2 } as const;
export const AUTH_TYPES = { WebhookKey: 4, HttpHeader: 5, HttpQueryString: 6 } as const;
/** ServiceEndpoint.contract for a webhook. */
export const WEBHOOK_CONTRACT = 8;
/** ServiceEndpoint.messageformat: JSON. */
export const JSON_MESSAGE_FORMAT = 2;

export type StageName = keyof typeof STAGES;
export type ModeName = keyof typeof MODES;
export type ImageTypeName = keyof typeof IMAGE_TYPES;
export type AuthTypeName = keyof typeof AUTH_TYPES;

const logicalName = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be a logical name (lowercase letters, digits, underscores)');
const columnList = z.array(logicalName).min(1);

const secretSetting = z.object({
  name: z.string().min(1).max(256),
  /** The environment variable holding the value, so the value never sits in the repository. */
  valueFromEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'),
});

const auth = z.discriminatedUnion('type', [
  z.object({ type: z.literal('WebhookKey') }).strict(),
  z.object({ type: z.literal('HttpHeader'), settings: z.array(secretSetting).min(1) }).strict(),
  z.object({ type: z.literal('HttpQueryString'), settings: z.array(secretSetting).min(1) }).strict(),
]);

const webhookUrl = z
  .url({ protocol: /^https$/, error: 'must be an https URL' })
  .refine((text) => !new URL(text).username && !new URL(text).password, 'must not carry credentials')
  .refine((text) => !new URL(text).searchParams.has('code'), 'must not carry ?code=: the key is sent by Dataverse from the registration');

const image = z
  .object({
    type: z.enum(Object.keys(IMAGE_TYPES) as [ImageTypeName, ...ImageTypeName[]]),
    alias: z.string().min(1).max(256),
    /** Defaults to the alias. */
    name: z.string().min(1).max(256).optional(),
    /** The columns the image holds; leave out for every column (larger payloads). */
    attributes: columnList.optional(),
    /** The request property the image is of; defaults by message (Create: Id, SetState: EntityMoniker, else Target). */
    messagePropertyName: z.string().min(1).optional(),
  })
  .strict();

const step = z
  .object({
    /** Defaults to "<endpoint name>: <message> of <table>"; steps are matched by name on every run. */
    name: z.string().min(1).max(256).optional(),
    description: z.string().max(256).optional(),
    table: logicalName,
    message: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'must be an SDK message name such as Create or Update'),
    stage: z.enum(Object.keys(STAGES) as [StageName, ...StageName[]]).default('PostOperation'),
    mode: z.enum(Object.keys(MODES) as [ModeName, ...ModeName[]]).default('Asynchronous'),
    rank: z.number().int().min(1).default(1),
    filteringAttributes: columnList.optional(),
    asyncAutoDelete: z.boolean().default(false),
    enabled: z.boolean().default(true),
    images: z.array(image).default([]),
  })
  .strict();

export const registrationSchema = z
  .object({
    $schema: z.string().optional(),
    endpoint: z
      .object({
        name: z.string().min(1).max(256),
        description: z.string().max(2000).optional(),
        /** May be left out here and given with --url. */
        url: webhookUrl.optional(),
        auth,
      })
      .strict(),
    steps: z.array(step).default([]),
  })
  .strict()
  .superRefine((registration, context) => {
    const names = new Set<string>();
    registration.steps.forEach((candidate, index) => {
      const issue = (message: string, ...path: (string | number)[]) => context.addIssue({ code: 'custom', message, path: ['steps', index, ...path] });
      const name = stepName(registration.endpoint.name, candidate);
      if (names.has(name.toLowerCase())) issue(`two steps are named "${name}": steps are matched by name, so names must be unique`, 'name');
      names.add(name.toLowerCase());
      if (candidate.mode === 'Asynchronous' && candidate.stage !== 'PostOperation') issue('an asynchronous step must be in the PostOperation stage', 'stage');
      if (candidate.asyncAutoDelete && candidate.mode !== 'Asynchronous') issue('asyncAutoDelete applies to asynchronous steps only', 'asyncAutoDelete');
      if (candidate.filteringAttributes && candidate.message !== 'Update') issue('filteringAttributes apply to the Update message only', 'filteringAttributes');
      const aliases = new Set<string>();
      candidate.images.forEach((img, imageIndex) => {
        if (aliases.has(img.alias)) issue(`two images use the alias "${img.alias}"`, 'images', imageIndex, 'alias');
        aliases.add(img.alias);
        const hasPre = img.type !== 'PostImage';
        const hasPost = img.type !== 'PreImage';
        if (hasPre && candidate.message === 'Create') issue('a Create step has no pre-image: the row does not exist yet', 'images', imageIndex, 'type');
        if (hasPost && candidate.message === 'Delete') issue('a Delete step has no post-image: the row no longer exists', 'images', imageIndex, 'type');
        if (hasPost && candidate.stage !== 'PostOperation') issue('a post-image needs the PostOperation stage', 'images', imageIndex, 'type');
      });
    });
  });

export type Registration = z.infer<typeof registrationSchema>;
export type StepDefinition = Registration['steps'][number];
export type ImageDefinition = StepDefinition['images'][number];
export type AuthDefinition = Registration['endpoint']['auth'];

export function stepName(endpointName: string, definition: { name?: string | undefined; message: string; table: string }): string {
  return definition.name ?? `${endpointName}: ${definition.message} of ${definition.table}`;
}

export function defaultMessagePropertyName(message: string): string {
  if (message === 'Create') return 'Id';
  if (message === 'SetState' || message === 'SetStateDynamicEntity') return 'EntityMoniker';
  return 'Target';
}

export class RegistrationFileError extends Error {
  override readonly name = 'RegistrationFileError';
}

/** Parses the registration file's text; errors name the file and the JSON paths, never a value. */
export function parseRegistration(text: string, source: string): Registration {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new RegistrationFileError(`${source} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = registrationSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${['$', ...issue.path].join('.')}: ${issue.message}`).join('; ');
    throw new RegistrationFileError(`${source} is not a valid registration: ${problems}`);
  }
  return parsed.data;
}

export async function loadRegistration(file: string): Promise<Registration> {
  return parseRegistration(await readFile(file, 'utf8'), file);
}
