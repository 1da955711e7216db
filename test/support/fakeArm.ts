import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Azure Resource Manager's function-key operations on 127.0.0.1: it answers
 * `POST …/functions/{function}/listkeys` and `POST …/host/default/listkeys` at the API version the
 * client must send, with the bearer token it must carry, and 404 (ARM's error JSON) for anything else.
 */
export interface FakeArm {
  url: string;
  token: string;
  requests: { method: string; path: string; apiVersion: string | null; authorization: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeArm(options: {
  site: string;
  functionKeys: Record<string, Record<string, string>>;
  hostFunctionKeys: Record<string, string>;
}): Promise<FakeArm> {
  const token = 'arm-test-token';
  const requests: FakeArm['requests'] = [];
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    requests.push({
      method: request.method ?? '',
      path: url.pathname,
      apiVersion: url.searchParams.get('api-version'),
      authorization: request.headers.authorization,
    });
    const answer = (status: number, body: unknown) => {
      response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(body));
    };
    if (request.headers.authorization !== `Bearer ${token}`)
      return answer(401, { error: { code: 'AuthenticationFailed', message: 'Authentication failed.' } });
    if (url.searchParams.get('api-version') !== '2024-04-01')
      return answer(400, { error: { code: 'InvalidApiVersionParameter', message: 'The api-version is invalid.' } });
    if (request.method !== 'POST') return answer(405, { error: { code: 'MethodNotAllowed', message: 'listkeys is a POST' } });
    const functionMatch = url.pathname.match(/^(.*)\/functions\/([^/]+)\/listkeys$/);
    if (functionMatch && functionMatch[1] === options.site) {
      const keys = options.functionKeys[functionMatch[2] ?? ''];
      if (keys) return answer(200, keys);
    }
    if (url.pathname === `${options.site}/host/default/listkeys`)
      return answer(200, { masterKey: 'master-key-never-used', functionKeys: options.hostFunctionKeys, systemKeys: {} });
    return answer(404, { error: { code: 'ResourceNotFound', message: `The Resource '${url.pathname}' was not found.` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token,
    requests,
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}
