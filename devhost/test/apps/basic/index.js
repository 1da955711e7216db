// A test app for the local host (devhost/test/localHost.test.ts): loaded first by package.json main.
const { appendFileSync } = require('node:fs');
const { app } = require('@azure/functions');

globalThis.indexLoadedFirst = true;
const record = (event) => appendFileSync(process.env.HOOKS_FILE, `${JSON.stringify(event)}\n`);

app.hook.appStart((context) => record({ hook: 'appStart', functionAppDirectory: context.functionAppDirectory, pid: process.pid }));
app.hook.preInvocation((context) => {
  context.hookData.started = true;
  record({ hook: 'preInvocation', functionName: context.invocationContext.functionName });
});
app.hook.postInvocation((context) => {
  record({
    hook: 'postInvocation',
    functionName: context.invocationContext.functionName,
    sawPre: context.hookData.started === true,
    failed: Boolean(context.error),
  });
});
app.hook.appTerminate(() => record({ hook: 'appTerminate', pid: process.pid }));
