import { execFile } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadedFiles, packageContents, productionPackages, STAGE_DIR, stage } from '../../deploy/stage';
import { FunctionsWorker } from '../../devhost/functionsCore';
import { registeredFunctionNames } from '../support/functionNames';
import { useTempDirs } from '../support/tempDirs';

/**
 * What a deploy uploads, from a clean build: `npm run package`'s steps in a copy of the project
 * (node_modules linked, nothing built: clean, build, stage), then the staged folder as a zip
 * deploy takes it (the folder less its .funcignore, which names nothing). It must hold the built
 * files the host's entry points load and the production dependency closure, and nothing else, and
 * the app must start from it alone. The packages are linked into the staged folder rather than
 * copied (39,000 files), and the package's contents listed from the same plan.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const tempDir = useTempDirs();
let copy: string;
let staged: string;
let contents: Array<{ file: string; bytes: number }>;

beforeAll(async () => {
  copy = path.join(tempDir('package-'), 'app');
  const { stdout } = await promisify(execFile)('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    try {
      cpSync(path.join(ROOT, file), path.join(copy, file));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  for (const script of ['clean', 'build'])
    await promisify(execFile)(npm, ['run', script], {
      cwd: copy,
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
      maxBuffer: 16 * 1024 * 1024,
    });
  staged = path.join(copy, STAGE_DIR);
  stage(copy, staged, { linkPackages: true });
  contents = packageContents(copy);
}, 180_000);

describe('the deploy package', () => {
  it('is what azure.yaml deploys', () => {
    expect(readFileSync(path.join(ROOT, 'azure.yaml'), 'utf8')).toMatch(new RegExp(`^    dist: ${STAGE_DIR.replace('.', '\\.')}$`, 'm'));
    // The steps this test takes, in this order.
    expect(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.package).toBe(
      'npm run clean && npm run build && node dist/deploy/stage.js',
    );
  });

  it('holds the host.json, a production package.json, the built files the entry points load, and nothing else of the project', () => {
    const topLevel = [...new Set(contents.map(({ file }) => file.split('/')[0]))].sort();
    expect(topLevel).toEqual(['dist', 'host.json', 'node_modules', 'package.json']);
    const manifest = JSON.parse(readFileSync(path.join(staged, 'package.json'), 'utf8'));
    expect(Object.keys(manifest).sort()).toEqual(['dependencies', 'engines', 'main', 'name', 'overrides', 'version']);
    const built = contents.filter(({ file }) => file.startsWith('dist/')).map(({ file }) => file);
    expect(built).toEqual(loadedFiles(copy).files);
    expect(readdirSync(path.join(staged, 'dist'), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length).toBe(
      built.length,
    );
    expect(built).toContain('dist/src/index.js');
    expect(built.filter((file) => file.startsWith('dist/src/functions/'))).toHaveLength(
      readdirSync(path.join(ROOT, 'src', 'functions')).length,
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
    const lock = JSON.parse(readFileSync(path.join(copy, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean }>;
    };
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
    const packages = [
      ...new Set(contents.filter(({ file }) => file.startsWith('node_modules/')).map(({ file }) => installedAt(file))),
    ].sort();
    const devOnly = packages.filter(
      (key) => lock.packages[key]?.dev || lock.packages[key]?.devOptional || lock.packages[key]?.optional || !lock.packages[key],
    );
    expect(devOnly).toEqual([]);
    expect(packages).toEqual(productionPackages(copy).filter((key) => contents.some(({ file }) => file.startsWith(`${key}/`))));
    for (const devPackage of ['typescript', 'vitest', 'azurite', 'azure-functions-core-tools'])
      expect(packages, devPackage).not.toContain(`node_modules/${devPackage}`);
    const bytes = contents.reduce((sum, { bytes: size }) => sum + size, 0);
    const app = contents.filter(({ file }) => !file.startsWith('node_modules/')).reduce((sum, { bytes: size }) => sum + size, 0);
    console.log(
      `deploy package: ${contents.length} files, ${(bytes / 1e6).toFixed(1)} MB (app ${(app / 1e3).toFixed(0)} kB, ${packages.length} production packages)`,
    );
  });

  it('starts on its own: the worker loads every function from the staged folder alone', async () => {
    const worker = new FunctionsWorker({ log: () => undefined });
    worker.install();
    try {
      await worker.startApp(staged);
      expect((await worker.indexFunctions()).functions.map((fn) => fn.name).sort()).toEqual(registeredFunctionNames(ROOT));
    } finally {
      worker.uninstall();
    }
  });
});
