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
export function createAzureTokenProvider(credential: TokenCredential = new DefaultAzureCredential(), now: () => number = Date.now): TokenProvider {
  const cache = new Map<string, { token: string; expiresOnTimestamp: number }>();
  return {
    async getToken(scope) {
      const cached = cache.get(scope);
      if (cached && cached.expiresOnTimestamp - RENEW_BEFORE_EXPIRY_MS > now()) return cached.token;
      let accessToken;
      try {
        accessToken = await credential.getToken(scope);
      } catch (error) {
        throw new TokenError(scope, error instanceof Error ? error.message : String(error));
      }
      if (!accessToken) throw new TokenError(scope, 'the credential returned no token');
      cache.set(scope, { token: accessToken.token, expiresOnTimestamp: accessToken.expiresOnTimestamp });
      return accessToken.token;
    },
  };
}

export class TokenError extends Error {
  override readonly name = 'TokenError';

  constructor(
    readonly scope: string,
    reason: string,
  ) {
    super(`Could not get a token for ${scope} (sign in with "az login", or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET): ${reason}`);
  }
}
