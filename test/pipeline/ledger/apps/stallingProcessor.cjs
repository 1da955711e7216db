// A processor in a process of its own (the built app: npm test builds dist/ first), whose handler
// stalls the process's event loop with a busy loop: a real stall, which no timer of the process can
// interrupt. What it does is told by STALL_PLAN; what happens is written to stdout, a JSON line per
// step, with the wall-clock time (the test's processes share the machine's clock).
const path = require('node:path');

const dist = path.resolve(__dirname, '..', '..', '..', '..', 'dist', 'src');
const { on } = require(path.join(dist, 'handlerApi', 'index.js'));
const { registryOf } = require(path.join(dist, 'handlerApi', 'load.js'));
const { parseEnvelope } = require(path.join(dist, 'pipeline', 'envelope.js'));
const { processEnvelope } = require(path.join(dist, 'pipeline', 'process.js'));
const { readProcessSettings } = require(path.join(dist, 'settings.js'));
const { createStorageClients } = require(path.join(dist, 'storage', 'clients.js'));
const { silentLog } = require(path.join(dist, 'observability', 'log.js'));

/** @type {{ connectionString: string; names: object; message: unknown; leaseMs: number; beforeMs: number; stallMs: number; afterMs: number }} */
const plan = JSON.parse(process.env.STALL_PLAN ?? '{}');
const say = (line) => process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);

/** A wait its signal cuts short, as a handler that honours ctx.signal waits. */
const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

const handler = on({ name: 'slow', entity: '*', message: '*' }, async (_event, ctx) => {
  say({ kind: 'start' });
  try {
    await sleep(plan.beforeMs, ctx.signal);
    say({ kind: 'stall', ms: plan.stallMs });
    const until = Date.now() + plan.stallMs;
    while (Date.now() < until) {
      // Busy: nothing else in this process runs meanwhile, its lease's timers included.
    }
    await sleep(plan.afterMs, ctx.signal);
    say({ kind: 'effect' });
  } catch (error) {
    say({ kind: 'aborted', reason: String(error?.message ?? error) });
    throw error;
  }
});

const storage = createStorageClients(plan.connectionString, { names: plan.names });
processEnvelope(parseEnvelope(plan.message), {
  storage,
  handlers: registryOf([handler]),
  settings: { ...readProcessSettings({}), leaseMs: plan.leaseMs, deferJitterMs: 0 },
  log: silentLog,
  deliveryCount: 1,
})
  .then(
    (outcome) => say({ kind: 'outcome', status: outcome.status }),
    (error) => say({ kind: 'outcome', error: error?.name ?? String(error) }),
  )
  .finally(() => process.exit(0));
