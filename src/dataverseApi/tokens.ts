import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';

/** Gives a bearer token for a scope such as `https://contoso.crm.dynamics.com/.default`. */
export interface TokenProvider {
  getToken(scope: string): Promise<string>;
}

/** A token is renewed this long before it expires, so a request never leaves with a dying one. */
const RENEW_BEFORE_EXPIRY_MS = 2 * 60_000;

/**
 * Tokens from an `@azure/identity` credential, cached per scope until shortly before they expire
 * (the Azure CLI credential starts a process for every token it is asked for).
 *
 * The default, DefaultAzureCredential, tries in turn: client credentials from AZURE_TENANT_ID /
 * AZURE_CLIENT_ID / AZURE_CLIENT_SECRET (or a certificate), workload identity, managed identity,
 * then the Azure CLI, Azure PowerShell and Azure Developer CLI logins.
 */
export function createAzureTokenProvider(
  credential: TokenCredential = new DefaultAzureCredential(),
  now: () => number = Date.now,
): TokenProvider {
  const cache = new Map<string, { token: string; expiresOnTimestamp: number }>();
  return {
    async getToken(scope) {
      const cached = cache.get(scope);
      if (cached && cached.expiresOnTimestamp - RENEW_BEFORE_EXPIRY_MS > now()) return cached.token;
      let accessToken;
      try {
        accessToken = await credential.getToken(scope);
      } catch (error) {
        throw new TokenError(scope, error);
      }
      if (!accessToken) throw new TokenError(scope, new Error('the credential returned no token'));
      cache.set(scope, { token: accessToken.token, expiresOnTimestamp: accessToken.expiresOnTimestamp });
      return accessToken.token;
    },
  };
}

const SIGN_IN = 'run "az login" (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal)';

/**
 * One line for a credential failure. @azure/identity's DefaultAzureCredential throws an
 * AggregateAuthenticationError listing each credential it tried, one per line: when none of them
 * was available, the user is simply not signed in; otherwise the first real failure is the reason
 * (an expired login, another tenant…).
 */
export function describeCredentialError(error: unknown, resource: string): string {
  const errors: unknown[] = error instanceof Error && 'errors' in error && Array.isArray(error.errors) ? error.errors : [error];
  const unavailable = (candidate: unknown) => candidate instanceof Error && candidate.name === 'CredentialUnavailableError';
  if (errors.length > 0 && errors.every(unavailable)) return `Not signed in to Azure: ${SIGN_IN} to get a token for ${resource}`;
  const failure = errors.find((candidate) => !unavailable(candidate)) ?? error;
  const reason = (failure instanceof Error ? failure.message : String(failure)).split('\n')[0]!.replace(/\s+/g, ' ').trim().slice(0, 300);
  return `Could not get a token for ${resource} (${reason}): ${SIGN_IN}`;
}

/** Whether an error is @azure/identity's: the user has to sign in, or sign in differently. */
export function isCredentialError(error: unknown): boolean {
  return (
    error instanceof Error &&
    ['CredentialUnavailableError', 'AggregateAuthenticationError', 'AuthenticationError', 'AuthenticationRequiredError'].includes(
      error.name,
    )
  );
}

export class TokenError extends Error {
  override readonly name = 'TokenError';

  constructor(
    readonly scope: string,
    cause: unknown,
  ) {
    super(describeCredentialError(cause, scope.replace(/\/\.default$/, '')), { cause });
  }
}
