import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { issueList, zodIssues } from '../dataverse/issues';

/**
 * The registration file (`registration/webhook.json`) holds what the code cannot know: which
 * ServiceEndpoint Dataverse posts to (its name, description, URL and authentication type). The
 * steps and images come from the handlers' declarations (src/handlers/, `on(…)`), and the values
 * that change per environment come from the command line or the environment: the URL (`--url`),
 * the organization (`--org` or DATAVERSE_URL), the function key (`--key` or `--key-from-azure`)
 * and the HttpHeader / HttpQueryString values (the environment variables the file names). It holds
 * no secret.
 */

export const AUTH_TYPES = { WebhookKey: 4, HttpHeader: 5, HttpQueryString: 6 } as const;
/** ServiceEndpoint.contract for a webhook. */
export const WEBHOOK_CONTRACT = 8;
/** ServiceEndpoint.messageformat: JSON. */
export const JSON_MESSAGE_FORMAT = 2;

export type AuthTypeName = keyof typeof AUTH_TYPES;

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

/**
 * The webhook URL, from the file or `--url` alike: https, no user name or password, no `?code=`
 * (Dataverse adds the key from the registration). Messages never repeat the URL: it may hold a key.
 */
export function webhookUrlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'https:') return 'must be an https URL (Dataverse posts only to https)';
  if (url.username || url.password) return 'must not carry a user name or password';
  if ([...url.searchParams.keys()].some((name) => name.toLowerCase() === 'code'))
    return 'must not carry ?code=: Dataverse sends the key from the registration (give it with --key or --key-from-azure)';
  if (url.hash) return 'must not have a #fragment';
  return null;
}

const webhookUrl = z.string().superRefine((text, context) => {
  const problem = webhookUrlProblem(text);
  if (problem) context.addIssue({ code: 'custom', message: problem });
});

export const registrationSchema = z
  .object({
    $schema: z.string().optional(),
    endpoint: z
      .object({
        name: z.string().min(1).max(256),
        description: z.string().max(2000).optional(),
        /** May be left out here and given with --url (it differs per environment). */
        url: webhookUrl.optional(),
        auth,
      })
      .strict(),
  })
  .strict();

export type Registration = z.infer<typeof registrationSchema>;
export type AuthDefinition = Registration['endpoint']['auth'];

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
  if (typeof json === 'object' && json !== null && 'steps' in json) {
    throw new RegistrationFileError(
      `${source} lists steps: steps are now declared by the handlers (on(…) in src/handlers/, see "register --plan"); remove "steps" from the file and declare each one's stage, mode, filteringAttributes and images in its handler`,
    );
  }
  const parsed = registrationSchema.safeParse(json);
  if (!parsed.success) {
    throw new RegistrationFileError(`${source} is not a valid registration: ${issueList(zodIssues(parsed.error))}`);
  }
  return parsed.data;
}

export async function loadRegistration(file: string): Promise<Registration> {
  return parseRegistration(await readFile(file, 'utf8'), file);
}
