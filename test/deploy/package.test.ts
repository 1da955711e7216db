import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadedFiles, productionPackages, STAGE_DIR } from '../../deploy/stage';
import { FunctionsWorker } from '../../devhost/functionsCore';
import { FUNCTION_NAMES } from '../../src/functionNames';
import { extractZip, writeZip, type ZipEntry } from '../support/zip';
import {
  type AzdService,
  azdPackageFolder,
  azdService,
  dependenciesUpToDate,
  deployableZipEntries,
  remoteBuild,
  type StepResult,
} from './azdEmulation';

/**
 * What `azd up` deploys, from a fresh clone: the committed HEAD cloned into an empty folder
 * (nothing beside it: no ../shared, no .deploy), then azd's own steps for the service `api`, as its
 * source does them (./azdEmulation.ts cites each): restore, the `prepackage` hook of azure.yaml, the
 * framework's `npm run build`, the check that `dist` exists, then the zip of `dist` less its
 * .funcignore. The zip, unpacked alone into another empty folder, must load as the Node worker
 * loads an app (devhost/functionsCore.ts) and register every function of src/functions; and it
 * must hold the built files the entry points load and the production dependency closure, and
 * nothing else. Without the hook this stops where azd stops: "package source '…/.deploy' is empty
 * or does not exist".
 *
 * Restore: the clone has no node_modules, so azd runs its real `npm install` (from the npm cache
 * only: the registry is never asked). AZD_RESTORE=linked gives the clone the project's own
 * node_modules instead (installed from the same lock, which is checked, its install marker newer
 * than the lock, as `npm ci` leaves it), so azd's own check finds the dependencies up to date and
 * installs nothing: half a minute less.
 */
const ROOT = path.resolve(__dirname, '..', '..');
/**
 * The clone, the zip and the unpacked zip are some 140,000 files written once and deleted: in
 * memory where Linux offers room for them (/dev/shm), which makes deleting them a second rather
 * than a minute on a busy disk; the temp folder elsewhere.
 */
const SCRATCH = (() => {
  if (!existsSync('/dev/shm')) return tmpdir();
  const { bavail, bsize } = statfsSync('/dev/shm');
  // A container's /dev/shm is often 64 MB: the files need about 1 GB (the installed node_modules, 600 MB).
  return bavail * bsize > 2 * 1024 ** 3 ? '/dev/shm' : tmpdir();
})();
const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(SCRATCH, prefix));
  dirs.push(dir);
  return dir;
};

let clone: string;
let service: AzdService;
let steps: StepResult[];
let zipped: Array<{ file: string; bytes: number }>;
let unpacked: string;
let zipBytes: number;
const timings: string[] = [];

beforeAll(async () => {
  const timed = async <T>(label: string, work: () => Promise<T> | T): Promise<T> => {
    const started = Date.now();
    const result = await work();
    timings.push(`${label} ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return result;
  };
  clone = path.join(tempDir('azd-clone-'), 'app');
  await timed('clone', () => promisify(execFile)('git', ['clone', '--quiet', ROOT, clone]));
  service = azdService(clone, 'api');
  expect(dependenciesUpToDate(clone)).toBe(false);
  if (process.env['AZD_RESTORE'] === 'linked') {
    expect(readFileSync(path.join(clone, 'package-lock.json'), 'utf8')).toBe(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
    const installed = statSync(path.join(ROOT, 'node_modules', '.package-lock.json')).mtime;
    const before = new Date(installed.getTime() - 1000);
    utimesSync(path.join(clone, 'package-lock.json'), before, before);
    expect(dependenciesUpToDate(clone)).toBe(true);
  }
  const env = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    // The registry is never asked: every package comes from the npm cache that `npm ci` filled.
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    APPLICATIONINSIGHTS_CONNECTION_STRING: '',
  };
  ({ steps } = await azdPackageFolder(service, env));
  timings.push(...steps.map((step) => `${step.step} ${(step.ms / 1000).toFixed(1)} s`));
  const zip = path.join(tempDir('azd-zip-'), 'dataverse-webhooks-api-azddeploy.zip');
  zipped = [];
  const recorded = function* (entries: Iterable<ZipEntry>) {
    for (const entry of entries) {
      zipped.push({ file: entry.name, bytes: entry.data.length });
      yield entry;
    }
  };
  const written = await timed('zip', () => writeZip(zip, recorded(deployableZipEntries(path.join(clone, service.dist), service))));
  zipBytes = written.bytes;
  unpacked = tempDir('azd-unpacked-');
  expect(await timed('unzip', () => extractZip(zip, unpacked))).toBe(written.entries);
}, 300_000);

afterAll(() => {
  const started = Date.now();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  timings.push(`clean-up ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`azd package from a fresh clone: ${timings.join(', ')}`);
}, 180_000);

describe('azd up from a fresh clone', () => {
  it('stages .deploy in the prepackage hook, in both its forms, before azd builds and zips', () => {
    expect(service).toMatchObject({ dist: STAGE_DIR, language: 'js', host: 'function' });
    expect(service.hooks['prepackage']).toEqual({
      posix: { shell: 'sh', run: 'npm run package' },
      windows: { shell: 'pwsh', run: 'npm run package' },
    });
    expect(steps.map((step) => step.step)).toEqual([
      ...(process.env['AZD_RESTORE'] === 'linked' ? [] : ['restore']),
      'prepackage',
      'package (framework)',
    ]);
    // The hook's script: a clean build, then the staging.
    expect(JSON.parse(readFileSync(path.join(clone, 'package.json'), 'utf8')).scripts.package).toBe(
      'npm run clean && npm run build && node dist/deploy/stage.js',
    );
    // Flex Consumption does not build remotely: the packages travel in the zip.
    expect(remoteBuild(service)).toBe(false);
  });

  it('the zip alone starts: the worker registers every function of src/functions', async () => {
    // Nothing of the repository around it: a folder of its own under the scratch folder.
    expect(path.dirname(unpacked)).toBe(SCRATCH);
    expect(existsSync(path.join(SCRATCH, 'node_modules'))).toBe(false);
    expect(existsSync(path.join(unpacked, '.funcignore'))).toBe(false);
    const worker = new FunctionsWorker({ log: () => undefined });
    worker.install();
    try {
      await worker.startApp(unpacked);
      expect((await worker.indexFunctions()).functions.map((fn) => fn.name).sort()).toEqual(Object.values(FUNCTION_NAMES).sort());
    } finally {
      worker.uninstall();
    }
  });

  it('holds the host.json, a production package.json, the built files the entry points load, and nothing else of the project', () => {
    const topLevel = [...new Set(zipped.map(({ file }) => file.split('/')[0]))].sort();
    expect(topLevel).toEqual(['dist', 'host.json', 'node_modules', 'package.json']);
    const manifest = JSON.parse(readFileSync(path.join(unpacked, 'package.json'), 'utf8'));
    expect(Object.keys(manifest).sort()).toEqual(['dependencies', 'engines', 'main', 'name', 'overrides', 'version']);
    const built = zipped
      .filter(({ file }) => file.startsWith('dist/'))
      .map(({ file }) => file)
      .sort();
    expect(built).toEqual(loadedFiles(clone).files);
    expect(built).toContain('dist/src/index.js');
    expect(built.filter((file) => file.startsWith('dist/src/functions/'))).toHaveLength(
      readdirSync(path.join(ROOT, 'src', 'functions')).filter((file) => file.endsWith('.ts')).length,
    );
    // No dev host, CLI, test, bench, staging script, TypeScript or source map.
    expect(built.filter((file) => /^dist\/(src\/cli\/|devhost\/|bench\/|test\/|deploy\/)|\.(ts|map)$/.test(file))).toEqual([]);
    expect(built.filter((file) => file.startsWith('dist/src/handlerApi/')).sort()).toEqual([
      'dist/src/handlerApi/declarations.js',
      'dist/src/handlerApi/index.js',
      'dist/src/handlerApi/load.js',
    ]);
  });

  it('holds the production dependency closure of package-lock.json, and no dev-only or optional package', () => {
    const lock = JSON.parse(readFileSync(path.join(clone, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean }>;
    };
    const packages = zippedPackages();
    const devOnly = packages.filter(
      (key) => lock.packages[key]?.dev || lock.packages[key]?.devOptional || lock.packages[key]?.optional || !lock.packages[key],
    );
    expect(devOnly).toEqual([]);
    expect(packages).toEqual(productionPackages(clone).filter((key) => zipped.some(({ file }) => file.startsWith(`${key}/`))));
    for (const devPackage of ['typescript', 'vitest', 'azurite', 'azure-functions-core-tools'])
      expect(packages, devPackage).not.toContain(`node_modules/${devPackage}`);
  });

  it('is what docs/deploy.md says: the package count exactly, the sizes every change moves within their tolerance', () => {
    const measured = {
      files: zipped.length,
      unpackedMB: zipped.reduce((sum, { bytes }) => sum + bytes, 0) / 1e6,
      appKB: zipped.filter(({ file }) => !file.startsWith('node_modules/')).reduce((sum, { bytes }) => sum + bytes, 0) / 1e3,
      packages: zippedPackages().length,
      zipMB: zipBytes / 1e6,
    };
    console.log(
      `deploy package: ${measured.files} files, ${measured.unpackedMB.toFixed(1)} MB (app ${measured.appKB.toFixed(0)} kB, ${measured.packages} production packages; ${measured.zipMB.toFixed(1)} MB as a zip)`,
    );
    const doc = readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8').replace(/\s+/g, ' ');
    const stated = DOC_FIGURES.exec(doc);
    expect(stated, "docs/deploy.md states the package's figures").not.toBeNull();
    const [, files, unpackedMB, appKB, packages, zipMB] = stated!.map((figure) => Number(figure.replaceAll(',', '')));
    // Exact: it moves only when a production dependency is added or removed, and then the doc must say so.
    expect(measured.packages, 'production packages: docs/deploy.md gives their count exactly').toBe(packages);
    // Within a tolerance: the app's own files move with every change of the code, the rest with dependency updates.
    const near = (name: string, value: number, about: number, tolerance: number) => {
      const why = `${name}: ${value.toFixed(1)} measured; docs/deploy.md says about ${about} (within ${tolerance * 100} %)`;
      expect(value, why).toBeGreaterThanOrEqual(about * (1 - tolerance));
      expect(value, why).toBeLessThanOrEqual(about * (1 + tolerance));
    };
    near('files', measured.files, files!, 0.02);
    near('MB unpacked', measured.unpackedMB, unpackedMB!, 0.03);
    near('MB as a zip', measured.zipMB, zipMB!, 0.05);
    near("the app's kB", measured.appKB, appKB!, 0.25);
  });
});

/** The figures docs/deploy.md gives, in the words it gives them (whitespace collapsed). */
const DOC_FIGURES =
  /about ([\d,]+) files, about ([\d.]+) MB unpacked \(the app about ([\d,]+) kB, (\d+) production packages; about ([\d.]+) MB as a zip/;

/** The installed packages the zip holds, by their node_modules path. */
function zippedPackages(): string[] {
  const installedAt = (file: string) => {
    const parts = file.split('/');
    const keys: string[] = [];
    for (let i = 0; i < parts.length - 1; i += 1) {
      if (parts[i] !== 'node_modules') continue;
      const name = parts[i + 1]!.startsWith('@') ? parts.slice(i + 1, i + 3).join('/') : parts[i + 1]!;
      keys.push([...parts.slice(0, i), 'node_modules', name].join('/'));
    }
    return keys.at(-1)!;
  };
  return [...new Set(zipped.filter(({ file }) => file.startsWith('node_modules/')).map(({ file }) => installedAt(file)))].sort();
}
