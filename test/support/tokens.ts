import type { TokenProvider } from '../../src/dataverseApi';

/**
 * Tokens by scope, as Entra ID would issue them: a scope no one expects (a token for the wrong
 * resource) fails the request, so the tests see that each call asks for the right audience.
 */
export function scopedTokens(tokens: Record<string, string>): TokenProvider & { scopes: string[] } {
  const scopes: string[] = [];
  return {
    scopes,
    async getToken(scope) {
      scopes.push(scope);
      const token = tokens[scope];
      if (!token) throw new Error(`No token for the scope ${scope}`);
      return token;
    },
  };
}
