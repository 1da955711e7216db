import { z } from 'zod';
import { createHttpClient, type HttpOptions, readJson } from '../dataverseApi/http';

/**
 * Reads a function key of the deployed app through Azure Resource Manager, so the key is never
 * pasted: `POST …/sites/{app}/functions/{function}/listkeys` (the function's own keys) or
 * `POST …/sites/{app}/host/default/listkeys` (host keys, valid for every function).
 * The caller needs `Microsoft.Web/sites/functions/listkeys/action` or
 * `Microsoft.Web/sites/host/listkeys/action` on the app (e.g. Website Contributor).
 */

export const ARM_URL = 'https://management.azure.com';
/** Microsoft.Web API version for the key operations. */
export const WEB_API_VERSION_FOR_KEYS = '2024-04-01';

export interface FunctionKeyLocation {
  subscriptionId: string;
  resourceGroup: string;
  app: string;
  /** The function whose keys to read; `undefined` reads the host's function keys. */
  functionName: string | undefined;
  /** Which key: `default` unless a second key was added for rotation. */
  keyName: string;
}

const stringMap = z.record(z.string(), z.string());
// The REST specification wraps the keys in `properties`; the service answers with the bare map.
const functionKeysResponse = z.union([z.object({ properties: stringMap }).transform((body) => body.properties), stringMap]);
const hostKeysResponse = z.object({ functionKeys: stringMap.nullish() }).transform((body) => body.functionKeys ?? {});

export class FunctionKeyError extends Error {
  override readonly name = 'FunctionKeyError';
}

function segment(value: string, what: string): string {
  if (!/^[A-Za-z0-9._()-]+$/.test(value)) throw new FunctionKeyError(`Not a valid ${what}: ${JSON.stringify(value.slice(0, 100))}`);
  return encodeURIComponent(value);
}

export async function fetchFunctionKey(location: FunctionKeyLocation, options: HttpOptions & { armUrl?: string }): Promise<string> {
  const armUrl = new URL(options.armUrl ?? ARM_URL);
  const site = `/subscriptions/${segment(location.subscriptionId, 'subscription id')}/resourceGroups/${segment(location.resourceGroup, 'resource group')}/providers/Microsoft.Web/sites/${segment(location.app, 'app name')}`;
  const path =
    location.functionName === undefined
      ? `${site}/host/default/listkeys`
      : `${site}/functions/${segment(location.functionName, 'function name')}/listkeys`;
  const url = new URL(`${path}?api-version=${WEB_API_VERSION_FOR_KEYS}`, armUrl);
  const describe = `POST ${path}`;

  const http = createHttpClient(options);
  const response = await http.send({ method: 'POST', url, scope: `${armUrl.origin}/.default` }, describe);
  const keys = await readJson(response, location.functionName === undefined ? hostKeysResponse : functionKeysResponse, describe);
  const key = keys[location.keyName];
  if (!key) {
    const where =
      location.functionName === undefined ? `the host of ${location.app}` : `the function ${location.functionName} of ${location.app}`;
    throw new FunctionKeyError(`${where} has no key named "${location.keyName}" (it has: ${Object.keys(keys).join(', ') || 'none'})`);
  }
  return key;
}
