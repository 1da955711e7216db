import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { on } from '../../src/handlerApi';
import { registryOf } from '../../src/handlerApi/load';
import { describeError, type EventLog, handlerFrame } from '../../src/observability/log';
import { parseEnvelope } from '../../src/pipeline/envelope';
import { processEnvelope } from '../../src/pipeline/process';
import { HandlerFailedError } from '../../src/pipeline/runUnit';
import { readProcessSettings } from '../../src/settings';
import { fixture } from '../support/fixtures';
import { ingest } from '../support/processing';
import { drainQueue, isolatedStorage } from '../support/storage';
import { useTempDirs } from '../support/tempDirs';

/**
 * A failing handler points at its own line: the log line, the ledger's reason (which `failures`
 * prints) and the error the host logs name the handler's source file and line, mapped from the
 * build through its source map, and none of the engine's frames.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const tempDir = useTempDirs();
/** Line 6, column 9 of src/handlers/boom.ts throws; line 10 calls a helper outside src/handlers that throws. */
const BOOM = `import { helper } from '../lib/helper';

export function boom(): void {
  const reason = 'boom';
  // the next line throws
  throw new Error(reason);
}

export function callsHelper(): void {
  helper();
}
`;
const HELPER = `export function helper(): void {\n  throw new TypeError('helper failed');\n}\n`;

let built: { boom: () => void; callsHelper: () => void };

beforeAll(async () => {
  // A user's app, built as the project builds it: dist/src/handlers/boom.js with its source map.
  const app = path.join(tempDir('handler-frame-'), 'app');
  mkdirSync(path.join(app, 'src', 'handlers'), { recursive: true });
  mkdirSync(path.join(app, 'src', 'lib'), { recursive: true });
  writeFileSync(path.join(app, 'src', 'handlers', 'boom.ts'), BOOM);
  writeFileSync(path.join(app, 'src', 'lib', 'helper.ts'), HELPER);
  writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'node16',
        moduleResolution: 'node16',
        rootDir: '.',
        outDir: 'dist',
        sourceMap: true,
        strict: true,
        types: [],
      },
      include: ['src/**/*.ts'],
    }),
  );
  await promisify(execFile)(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app]);
  built = require(path.join(app, 'dist', 'src', 'handlers', 'boom.js'));
}, 60_000);

const thrown = (run: () => void): Error => {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('did not throw');
};

describe('a failing handler', () => {
  it('is described with its own source line, mapped from the build', () => {
    expect(describeError(thrown(built.boom))).toBe('Error: boom (src/handlers/boom.ts:6:9)');
    // What the handler called threw: the handler's line that called it.
    expect(describeError(thrown(built.callsHelper))).toMatch(/^TypeError: helper failed \(src\/handlers\/boom\.ts:10:\d+\)$/);
  });

  it('run from source (the test kit, vitest), or not from a handler at all', () => {
    const error = new Error('boom');
    error.stack = [
      'Error: boom',
      '    at Object.handle (/home/u/app/src/handlers/contactChanges.test.ts:3:9)',
      '    at handle (/home/u/app/src/handlers/contactChanges.ts:12:11)',
      '    at runUnit (/home/u/app/dist/src/pipeline/process.js:310:17)',
    ].join('\n');
    expect(handlerFrame(error)).toBe('src/handlers/contactChanges.ts:12:11');
    const engine = new Error('storage');
    engine.stack = 'Error: storage\n    at runUnit (/home/u/app/dist/src/pipeline/process.js:310:17)';
    expect(describeError(engine)).toBe('Error: storage');
  });

  it('logs, records and throws its own line, and no engine frame', async () => {
    const storage = await isolatedStorage();
    const failing = on({ name: 'boom', entity: 'account', message: 'Create' }, () => built.boom());
    const registry = registryOf([{ failing }], []);
    await ingest(storage, fixture('06-').body);
    const [message] = await drainQueue(storage.eventsQueue);
    const lines: string[] = [];
    const log: EventLog = {
      info: () => undefined,
      warn: (text, properties) => lines.push(`${text} ${JSON.stringify(properties)}`),
      error: (text, properties) => lines.push(`${text} ${JSON.stringify(properties)}`),
    };
    const settings = readProcessSettings({});
    const failure = await processEnvelope(parseEnvelope(message), { storage, handlers: registry, settings, log, deliveryCount: 1 }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(HandlerFailedError);
    const error = failure as HandlerFailedError;
    expect(error.stack).toBe(`HandlerFailedError: handler boom failed for event ${error.eventId}: Error: boom (src/handlers/boom.ts:6:9)`);
    expect(lines).toEqual([expect.stringContaining('"error":"Error: boom (src/handlers/boom.ts:6:9)"')]);
    expect(lines[0]).toMatch(/^Handler failed; the message will be retried/);
  });
});
