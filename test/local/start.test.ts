import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { TableServiceClient } from '@azure/data-tables';
import { describe, expect, inject, it } from 'vitest';
import { connectionStringFor, type AzuritePorts } from '../../src/local/azurite';
import { findFunc, FUNC_MISSING_MESSAGE, isListening } from '../../src/local/start';
import { createStorageClients } from '../../src/storage/clients';
import { useTempDirs } from '../support/tempDirs';

const START_SCRIPT = path.resolve(__dirname, '..', '..', 'dist', 'src', 'local', 'start.js');
const DRIVER = path.join(__dirname, 'devLoopDriver.cjs');

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

async function freePorts(): Promise<AzuritePorts> {
  const servers = [0, 1, 2].map(() => createServer());
  const ports = await Promise.all(
    servers.map((server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return { blob: ports[0]!, queue: ports[1]!, table: ports[2]! };
}

async function waitForFile(file: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!existsSync(file)) {
    if (child.exitCode !== null) throw new Error(`the dev loop exited (${child.exitCode}) before ${path.basename(file)} appeared:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`${path.basename(file)} did not appear:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
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
  fakeProgram(path.join(bin, 'func'), report.func, options.funcExitsWith === undefined ? {} : { exitWith: options.funcExitsWith, exitOnceExists: report.watch });
  const watch = fakeProgram(path.join(root, 'fake-watch.cjs'), report.watch);
  const child = spawn(process.execPath, [DRIVER], {
    env: {
      PATH: bin,
      DEV_LOOP_OPTIONS: JSON.stringify({ projectRoot: root, ports, azuriteLocation: path.join(root, '.azurite'), watch: { command: process.execPath, args: [watch] } }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { root, report, child, output: () => output, exited };
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

  it('without func, says what is missing and how to install it, exits 1 and starts nothing', async () => {
    const cwd = tempDir('no-func-');
    const child = spawn(process.execPath, [START_SCRIPT], { cwd, env: { PATH: tempDir('empty-path-') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toBe(FUNC_MISSING_MESSAGE);
    expect(stderr).toContain('npm i -g azure-functions-core-tools@4 --unsafe-perm true');
    expect(stdout).toBe('');
    expect(existsSync(path.join(cwd, '.azurite'))).toBe(false);
  });
});

describe('npm start: the dev loop', () => {
  it('starts Azurite, creates the storage, runs watch and func against it, and stops all of it on SIGTERM', async () => {
    const ports = await freePorts();
    const scenario = startScenario(ports);
    await waitForFile(scenario.report.func, scenario.child, scenario.output);
    await waitForFile(scenario.report.watch, scenario.child, scenario.output);

    const func = JSON.parse(readFileSync(scenario.report.func, 'utf8'));
    expect(func).toMatchObject({ argv: ['start'], storage: connectionStringFor(ports), reachable: [true, true, true] });
    expect(path.resolve(func.cwd)).toBe(path.resolve(scenario.root));
    const storage = createStorageClients(func.storage, { retry: { maxTries: 1, tryTimeoutMs: 5_000 } });
    expect(await Promise.all([storage.eventsQueue.exists(), storage.poisonQueue.exists(), storage.payloads.exists(), storage.rejected.exists()])).toEqual([
      true, true, true, true,
    ]);
    const tables: string[] = [];
    for await (const table of TableServiceClient.fromConnectionString(func.storage, { allowInsecureConnection: true }).listTables()) tables.push(table.name ?? '');
    expect(tables.sort()).toEqual([storage.names.failuresTable, storage.names.ledgerTable].sort());

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
    expect(await createStorageClients(shared).eventsQueue.exists()).toBe(true);
  });

  it('stops the rest and exits 1 when func ends by itself', async () => {
    const ports = await freePorts();
    const scenario = startScenario(ports, { funcExitsWith: 3 });
    expect(await scenario.exited).toBe(1);
    expect(scenario.output()).toContain('func start exited (code 3)');
    expect(readFileSync(`${scenario.report.watch}.stopped`, 'utf8')).toBe('SIGTERM');
    expect(await isListening(ports.queue)).toBe(false);
  });

  it('leaves nothing running when SIGTERM comes while it is still starting', async () => {
    const ports = await freePorts();
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
