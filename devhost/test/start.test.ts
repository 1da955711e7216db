import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { TableServiceClient } from '@azure/data-tables';
import { describe, expect, inject, it } from 'vitest';
import { createStorageClients } from '../../src/storage/clients';
import { freeAzuritePorts } from '../../test/support/ports';
import { useTempDirs } from '../../test/support/tempDirs';
import { type AzuritePorts, connectionStringFor } from '../azurite';
import { LOCAL_HOST_LIMITS } from '../localHost';
import { FUNC_MISSING_NOTICE, findFunc, isListening, parseStartArgs } from '../start';
import { entryPointDirectories, watchApp } from '../watchApp';
import { eventually, isRunning, startDevLoopProcess, startLocalDevLoop } from './devHost';

const REPO = path.resolve(__dirname, '..', '..');
const START_SCRIPT = path.join(REPO, 'dist', 'devhost', 'start.js');
const TEST_APP = path.join(__dirname, 'apps', 'basic');

const tempDir = useTempDirs();

/** A stand-in for a long-running program: reports what it saw, then waits for SIGTERM and says so. */
function fakeProgram(file: string, report: string, options: { exitWith?: number; exitOnceExists?: string } = {}): string {
  writeFileSync(
    file,
    `#!${process.execPath}
const fs = require('node:fs');
const net = require('node:net');
const storage = process.env.AzureWebJobsStorage ?? '';
const ports = [...storage.matchAll(/Endpoint=http:\\/\\/127\\.0\\.0\\.1:(\\d+)/g)].map((m) => Number(m[1]));
const reachable = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
  socket.on('error', () => resolve(false));
});
Promise.all(ports.map(reachable)).then((results) => {
  fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd(), storage, reachable: results }));
  ${options.exitWith === undefined ? '' : `const exit = () => (fs.existsSync(${JSON.stringify(options.exitOnceExists)}) ? process.exit(${options.exitWith}) : setTimeout(exit, 20)); exit();`}
});
process.on('SIGTERM', () => {
  fs.writeFileSync(${JSON.stringify(`${report}.stopped`)}, 'SIGTERM');
  process.exit(0);
});
setInterval(() => {}, 1000);
`,
  );
  chmodSync(file, 0o755);
  return file;
}

async function waitForFile(file: string, child: ChildProcess, output: () => string): Promise<void> {
  await eventually(
    () => {
      if (existsSync(file)) return true;
      if (child.exitCode !== null)
        throw new Error(`the dev loop exited (${child.exitCode}) before ${path.basename(file)} appeared:\n${output()}`);
      return false;
    },
    `${path.basename(file)} to appear`,
    { timeoutMs: 20_000, output },
  );
}

interface Scenario {
  root: string;
  report: { func: string; watch: string };
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** The dev loop in a process of its own, with fake `func` (on PATH) and fake watch programs. */
function startScenario(ports: AzuritePorts, options: { funcExitsWith?: number } = {}): Scenario {
  const root = tempDir('dev-loop-');
  const bin = path.join(root, 'bin');
  mkdirSync(bin);
  const report = { func: path.join(root, 'func-report.json'), watch: path.join(root, 'watch-report.json') };
  // A func that ends by itself waits until the watcher runs (its SIGTERM handler installed), as a
  // real one takes seconds to start.
  fakeProgram(
    path.join(bin, 'func'),
    report.func,
    options.funcExitsWith === undefined ? {} : { exitWith: options.funcExitsWith, exitOnceExists: report.watch },
  );
  const watch = fakeProgram(path.join(root, 'fake-watch.cjs'), report.watch);
  const loop = startDevLoopProcess(
    { projectRoot: root, ports, azuriteLocation: path.join(root, '.azurite'), watch: { command: process.execPath, args: [watch] } },
    { PATH: bin },
  );
  return { root, report, child: loop.child, output: loop.output, exited: loop.exited };
}

describe('npm start: finding Azure Functions Core Tools', () => {
  it('finds an executable func on PATH, prefers node_modules/.bin, and ignores a func that cannot run', () => {
    const root = tempDir('find-func-');
    const onPath = path.join(root, 'on-path');
    const notExecutable = path.join(root, 'not-executable');
    mkdirSync(onPath);
    mkdirSync(notExecutable);
    writeFileSync(path.join(onPath, 'func'), '#!/bin/sh\n');
    chmodSync(path.join(onPath, 'func'), 0o755);
    writeFileSync(path.join(notExecutable, 'func'), '');
    const pathEnv = [notExecutable, onPath].join(path.delimiter);

    expect(findFunc({ projectRoot: root, pathEnv })).toBe(path.join(onPath, 'func'));
    expect(findFunc({ projectRoot: root, pathEnv: notExecutable })).toBeNull();
    expect(findFunc({ projectRoot: root, pathEnv: undefined })).toBeNull();

    const localBin = path.join(root, 'node_modules', '.bin');
    mkdirSync(localBin, { recursive: true });
    writeFileSync(path.join(localBin, 'func'), '#!/bin/sh\n');
    chmodSync(path.join(localBin, 'func'), 0o755);
    expect(findFunc({ projectRoot: root, pathEnv })).toBe(path.join(localBin, 'func'));
  });

  it("prestart empties dist/ before it builds, so a deleted function's old file is not loaded by the main glob", () => {
    const scripts = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['prestart']).toBe('npm run clean && npm run build');
    const app = tempDir('clean-');
    mkdirSync(path.join(app, 'dist', 'src', 'functions'), { recursive: true });
    writeFileSync(path.join(app, 'dist', 'src', 'functions', 'deleted.js'), '');
    const clean = /^node -e "(.*)"$/.exec(scripts['clean']!)![1]!;
    const result = spawnSync(process.execPath, ['-e', clean], { cwd: app });
    expect(result.status).toBe(0);
    expect(existsSync(path.join(app, 'dist'))).toBe(false);
  });

  it('takes --port as func start does, and refuses anything else', () => {
    expect(parseStartArgs([])).toEqual({});
    expect(parseStartArgs(['--port', '7072'])).toEqual({ port: 7072 });
    expect(parseStartArgs(['-p', '8080'])).toEqual({ port: 8080 });
    expect(() => parseStartArgs(['--port', 'http'])).toThrow(/--port must be a port number/);
    expect(() => parseStartArgs(['--verbose'])).toThrow();
  });

  it('a bad option is one line and the usage, exit 2, with nothing started', async () => {
    const cwd = tempDir('bad-option-');
    const child = spawn(process.execPath, [START_SCRIPT, '--port', 'x'], {
      cwd,
      env: { PATH: tempDir('empty-path-') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await new Promise<number | null>((resolve) => child.on('exit', resolve))).toBe(2);
    expect(stderr).toBe('--port must be a port number from 1 to 65535, not "x"\nUsage: npm start [-- --port <port>]\n');
    expect(existsSync(path.join(cwd, '.azurite'))).toBe(false);
  });
});

describe('npm start without func: the local host', () => {
  it('watches the folders the main glob reads from', () => {
    expect(entryPointDirectories('dist/src/{index.js,functions/*.js}')).toEqual(['dist/src']);
    expect(entryPointDirectories('{index.js,functions/*.js}')).toEqual(['.', 'functions']);
    expect(entryPointDirectories('dist/**/*.js')).toEqual(['dist']);
    expect(entryPointDirectories(undefined)).toEqual([]);
  });

  it('a file rewritten in two steps, as the compiler writes it, is a change only when its content ends up different', async () => {
    const root = tempDir('watch-app-');
    mkdirSync(path.join(root, 'dist', 'src', 'functions'), { recursive: true });
    writeFileSync(path.join(root, 'package.json'), JSON.stringify({ main: 'dist/src/{index.js,functions/*.js}' }));
    const file = path.join(root, 'dist', 'src', 'functions', 'a.js');
    writeFileSync(file, 'module.exports = 1;\n');
    const changes: string[][] = [];
    const watcher = watchApp(root, (files) => changes.push(files));
    try {
      // Truncated, seen, then written again as it was.
      writeFileSync(file, '');
      await new Promise((resolve) => setTimeout(resolve, 100));
      writeFileSync(file, 'module.exports = 1;\n');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(changes).toEqual([]);
      writeFileSync(file, '');
      writeFileSync(file, 'module.exports = 2;\n');
      const deadline = Date.now() + 30_000;
      while (changes.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(changes).toEqual([['dist/src/functions/a.js']]);
    } finally {
      watcher.close();
    }
  });

  it('says so in one line, serves the app, restarts it when the code changes, and Ctrl-C stops everything', async () => {
    // The test app, copied so that it can change, beside this project's node_modules.
    const root = tempDir('local-dev-loop-');
    cpSync(TEST_APP, root, { recursive: true });
    symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'), 'dir');
    const files = tempDir('local-dev-loop-files-');
    const watch = fakeProgram(path.join(files, 'fake-watch.cjs'), path.join(files, 'watch.json'));
    const { loop, ports, httpPort, hostPid } = await startLocalDevLoop({
      projectRoot: root,
      watch: { command: process.execPath, args: [watch] },
      env: { HOOKS_FILE: path.join(files, 'hooks.jsonl'), RESULTS_FILE: path.join(files, 'results.jsonl'), WORK_QUEUE: 'work' },
    });
    const [, url] = await loop.waitFor(/Host started: (\S+) \(process (\d+)\)/, 'the local host');
    expect(loop.output().split('\n')).toContain(FUNC_MISSING_NOTICE);
    expect(loop.output()).toContain(LOCAL_HOST_LIMITS);
    expect(url).toBe(`http://localhost:${httpPort}`);
    const read = async () =>
      ((await (await fetch(`http://127.0.0.1:${httpPort}/api/items/1`)).json()) as { functionName: string }).functionName;
    expect(await read()).toBe('readItem');

    // Rewriting a file as it was (the compiler's first pass) is not a change.
    const file = path.join(root, 'functions', 'http.js');
    const source = readFileSync(file, 'utf8');
    writeFileSync(file, source);
    writeFileSync(file, source.replace("app.http('readItem'", "app.http('readItemChanged'"));
    const [, changedPid] = await loop.waitFor(
      /Changed: functions\/http\.js\. Restarting the local host\.\n[\s\S]*Host started: \S+ \(process (\d+)\)/,
      'the restart',
    );
    expect(Number(changedPid)).not.toBe(hostPid);
    expect(loop.output().match(/Restarting the local host/g)).toHaveLength(1);
    expect(await read()).toBe('readItemChanged');
    expect(isRunning(hostPid)).toBe(false);
    // The first worker ran its appTerminate hook at the restart.
    expect(readFileSync(path.join(files, 'hooks.jsonl'), 'utf8')).toContain('"appTerminate"');

    // A change the host cannot start with does not end npm start: the next good save starts it again.
    const hostJson = readFileSync(path.join(root, 'host.json'), 'utf8');
    writeFileSync(path.join(root, 'host.json'), '{ "version": ');
    await loop.waitFor(/The local host exited \(code 1\); fix what it said and save to start it again\./, 'the failed restart');
    expect(loop.output()).toContain('The local host could not start: host.json is not valid JSON');
    writeFileSync(path.join(root, 'host.json'), hostJson);
    const [, fixedPid] = await loop.waitFor(
      /Changed: host\.json\. Restarting the local host\.\n[\s\S]*Changed: host\.json\. Restarting the local host\.\n[\s\S]*Host started: \S+ \(process (\d+)\)/,
      'the restart after the fix',
    );
    expect(await read()).toBe('readItemChanged');

    loop.child.kill('SIGINT');
    expect(await loop.exited).toBe(0);
    expect(await Promise.all([httpPort, ports.blob, ports.queue, ports.table].map(isListening))).toEqual([false, false, false, false]);
    const workerPids = readFileSync(path.join(files, 'hooks.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { hook: string; pid: number })
      .filter((hook) => hook.hook === 'appStart')
      .map((hook) => hook.pid);
    expect(new Set(workerPids).size).toBe(3);
    for (const pid of [Number(changedPid), Number(fixedPid), ...workerPids]) expect(isRunning(pid), `process ${pid}`).toBe(false);
    expect(readFileSync(path.join(files, 'watch.json.stopped'), 'utf8')).toBe('SIGTERM');
  }, 120_000);
});

describe('npm start: the dev loop', () => {
  it("starts Azurite, creates none of the app's storage (the app does), runs watch and func against it, and stops all of it on SIGTERM", async () => {
    const ports = await freeAzuritePorts();
    const scenario = startScenario(ports);
    await waitForFile(scenario.report.func, scenario.child, scenario.output);
    await waitForFile(scenario.report.watch, scenario.child, scenario.output);

    const func = JSON.parse(readFileSync(scenario.report.func, 'utf8'));
    expect(func).toMatchObject({ argv: ['start'], storage: connectionStringFor(ports), reachable: [true, true, true] });
    expect(path.resolve(func.cwd)).toBe(path.resolve(scenario.root));
    const storage = createStorageClients(func.storage, { retry: { maxTries: 1, tryTimeoutMs: 5_000 } });
    // What func start (or a fresh deployment) finds: an account with nothing of the app's in it.
    expect(
      await Promise.all([storage.eventsQueue.exists(), storage.poisonQueue.exists(), storage.payloads.exists(), storage.rejected.exists()]),
    ).toEqual([false, false, false, false]);
    const tables: string[] = [];
    for await (const table of TableServiceClient.fromConnectionString(func.storage, { allowInsecureConnection: true }).listTables())
      tables.push(table.name ?? '');
    expect(tables).toEqual([]);

    scenario.child.kill('SIGTERM');
    expect(await scenario.exited).toBe(0);
    expect(readFileSync(`${scenario.report.func}.stopped`, 'utf8')).toBe('SIGTERM');
    expect(readFileSync(`${scenario.report.watch}.stopped`, 'utf8')).toBe('SIGTERM');
    expect(await Promise.all([ports.blob, ports.queue, ports.table].map(isListening))).toEqual([false, false, false]);
    expect(existsSync(path.join(scenario.root, '.azurite'))).toBe(true);
  });

  it('reuses an Azurite already listening on the ports and leaves it running', async () => {
    const shared = inject('azuriteConnectionString');
    const port = (service: string) => Number(new RegExp(`${service}Endpoint=http://127\\.0\\.0\\.1:(\\d+)`).exec(shared)?.[1]);
    const ports = { blob: port('Blob'), queue: port('Queue'), table: port('Table') };
    const scenario = startScenario(ports);
    await waitForFile(scenario.report.func, scenario.child, scenario.output);
    expect(scenario.output()).toContain('already listening');
    expect(existsSync(path.join(scenario.root, '.azurite'))).toBe(false);

    scenario.child.kill('SIGTERM');
    expect(await scenario.exited).toBe(0);
    // Left running: it still answers.
    expect(await Promise.all([ports.blob, ports.queue, ports.table].map(isListening))).toEqual([true, true, true]);
  });

  it('stops the rest and exits 1 when func ends by itself', async () => {
    const ports = await freeAzuritePorts();
    const scenario = startScenario(ports, { funcExitsWith: 3 });
    expect(await scenario.exited).toBe(1);
    expect(scenario.output()).toContain('func start exited (code 3)');
    expect(readFileSync(`${scenario.report.watch}.stopped`, 'utf8')).toBe('SIGTERM');
    expect(await isListening(ports.queue)).toBe(false);
  });

  it('leaves nothing running when SIGTERM comes while it is still starting', async () => {
    const ports = await freeAzuritePorts();
    const scenario = startScenario(ports);
    // Azurite's blob service is up: it is still starting the others, or the storage is being created.
    while (!(await isListening(ports.blob))) {
      if (scenario.child.exitCode !== null) throw new Error(`the dev loop exited early:\n${scenario.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    scenario.child.kill('SIGTERM');
    await scenario.exited;
    expect(await Promise.all([ports.blob, ports.queue, ports.table].map(isListening))).toEqual([false, false, false]);
    for (const report of [scenario.report.func, scenario.report.watch]) {
      if (existsSync(report)) expect(readFileSync(`${report}.stopped`, 'utf8')).toBe('SIGTERM');
    }
  });
});
