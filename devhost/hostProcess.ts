import path from 'node:path';
import { parseArgs } from 'node:util';
import { LOCAL_HTTP_PORT } from '../src/functionNames';
import { readLocalSettings } from '../src/localSettings';
import { type LocalHost, startLocalHost } from './localHost';

/**
 * The local host as a process of its own, which `npm start` runs (and restarts when the code
 * changes) when func is not installed:
 *
 *   node dist/devhost/hostProcess.js [--port 7071]
 *
 * Like func start, it reads local.settings.json: its Values become app settings unless the
 * environment already sets them (StartHostAction.cs `UpdateEnvironmentVariables`), and its
 * Host.LocalHttpPort is the port unless --port is given (default 7071). SIGTERM or SIGINT stops it
 * gracefully. Options for tests: --lease-seconds (the queue listener's receive lease) and
 * --entry-point <file> (loaded after the app's own entry points; repeatable).
 */

/** The environment wins; a local setting fills only what it leaves unset (or empty). */
export function appSettings(env: NodeJS.ProcessEnv, local: Record<string, string>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...env };
  for (const [name, value] of Object.entries(local)) {
    if (!merged[name]) merged[name] = value;
  }
  return merged;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', short: 'p' },
      'lease-seconds': { type: 'string' },
      'entry-point': { type: 'string', multiple: true },
    },
  });
  const projectRoot = process.cwd();
  let host: LocalHost;
  let stopRequested = false;
  const stopSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = () => {
    stopRequested = true;
  };
  for (const signal of stopSignals) process.on(signal, onSignal);
  try {
    const local = readLocalSettings(projectRoot) ?? { values: {}, port: undefined };
    const port = values.port === undefined ? (local.port ?? LOCAL_HTTP_PORT) : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, not "${values.port}"`);
    host = await startLocalHost({
      projectRoot,
      env: appSettings(process.env, local.values),
      port,
      ...(values['lease-seconds'] === undefined ? {} : { leaseSeconds: Number(values['lease-seconds']) }),
      ...(values['entry-point'] ? { extraEntryPoints: values['entry-point'].map((file) => path.resolve(file)) } : {}),
    });
  } catch (error) {
    process.stderr.write(`The local host could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  process.stdout.write(`Host started: ${host.baseUrl} (process ${process.pid})\n`);
  await new Promise<void>((resolve) => {
    if (stopRequested) return resolve();
    for (const signal of stopSignals) process.on(signal, () => resolve());
  });
  await host.stop();
  return 0;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
