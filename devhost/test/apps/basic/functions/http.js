const { app } = require('@azure/functions');

// Read as this file loads: package.json main must have loaded index.js before it.
const indexLoadedFirst = globalThis.indexLoadedFirst === true;

const describe = async (request, context) => ({
  jsonBody: {
    functionName: context.functionName,
    method: request.method,
    url: request.url,
    params: request.params,
    query: Object.fromEntries(request.query),
    header: request.headers.get('x-test'),
    body: request.method === 'GET' ? null : await request.text(),
    indexLoadedFirst,
  },
});

// Two functions on one route, told apart by method; keys are not checked locally.
app.http('readItem', { route: 'items/{id:int}', methods: ['GET'], authLevel: 'function', handler: describe });
app.http('writeItem', { route: 'items/{id:int}', methods: ['POST', 'PUT'], authLevel: 'admin', handler: describe });
app.http('anyMethod', { route: 'any/{*rest}', methods: [], handler: describe });
app.http('throws', {
  route: 'throws',
  handler: (_request, context) => {
    context.log('about to fail');
    throw new Error('boom');
  },
});
app.http('nothing', { route: 'nothing', handler: () => undefined });
app.http('teapot', {
  route: 'teapot',
  handler: () => ({
    status: 418,
    headers: { 'x-kind': 'teapot' },
    cookies: [{ name: 'a', value: 'b', httpOnly: true }],
    body: 'short and stout',
  }),
});
