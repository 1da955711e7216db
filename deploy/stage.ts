import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { entryPointFiles } from '../hostRules/entryPoints';

/**
 * Deploy exactly what runs. `npm run package` (which azure.yaml's `prepackage` hook runs for
 * `azd package`, `azd deploy` and `azd up`, before azd zips `.deploy/`, its `dist`) builds the app
 * clean and stages in `.deploy/`:
 *  - host.json and a package.json with `name`, `version`, `engines`, `main`, `dependencies` and
 *    `overrides` only;
 *  - the built files the host's entry points load: package.json `main` expanded as the Node worker
 *    does, then every file they `require`, transitively (no CLI, no dev host, no tests, no bench,
 *    no TypeScript, no source maps);
 *  - node_modules: the production dependency closure, as package-lock.json marks it (no package
 *    the lock marks dev, devOptional or optional, so neither TypeScript nor Azure Functions Core
 *    Tools).
 * azd zips the folder less what its .funcignore matches, and never the .funcignore itself
 * (Azure/azure-dev, cli/azd/pkg/project/project_utils.go createDeployableZip): `.deploy/.funcignore`
 * exists, naming nothing, so that azd does not apply its default of leaving node_modules out (the
 * packages are deployed as they are; no remote build). Azure Functions Core Tools'
 * `func azure functionapp publish <app>`, run inside `.deploy/`, uploads the same folder.
 */

export const STAGE_DIR = '.deploy';

interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  dependencies?: Record<string, string>;
  overrides?: Record<string, unknown>;
  engines?: Record<string, string>;
}

interface LockPackage {
  dev?: boolean;
  devOptional?: boolean;
  optional?: boolean;
  link?: boolean;
}

export class StageError extends Error {
  override readonly name = 'StageError';
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const BUILTINS = new Set(builtinModules);

/** The package a bare specifier names (`@azure/functions/x` → `@azure/functions`); null for Node's own modules. */
function packageOf(specifier: string): string | null {
  if (specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]!)) return null;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function resolveFile(base: string): string | null {
  for (const candidate of [base, `${base}.js`, path.join(base, 'index.js')])
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  return null;
}

/**
 * The built files the entry points load, and the packages they require: compiled CommonJS, whose
 * `require("…")` calls tsc writes with literal specifiers (a non-literal one is not followed: the
 * app has one, the CLI's, which the entry points never load).
 */
export function loadedFiles(root: string): { files: string[]; packages: string[] } {
  const main = readJson<PackageJson>(path.join(root, 'package.json')).main;
  if (!main) throw new StageError('package.json has no "main": the host would load nothing');
  const entries = entryPointFiles(main, root).map((file) => path.join(root, file));
  if (entries.length === 0) throw new StageError(`package.json main "${main}" matches no built file: run "npm run build" first`);
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/\brequire\("([^"]+)"\)/g)) {
      if (specifier!.startsWith('.')) {
        const resolved = resolveFile(path.resolve(path.dirname(file), specifier!));
        if (!resolved) throw new StageError(`${path.relative(root, file)} requires ${specifier}, which was not built`);
        queue.push(resolved);
      } else {
        const name = packageOf(specifier!);
        if (name) packages.add(name);
      }
    }
  }
  return { files: [...files].map((file) => path.relative(root, file)).sort(), packages: [...packages].sort() };
}

/**
 * node_modules paths of the production dependency closure, from package-lock.json: what the root's
 * `dependencies` reach, resolved as Node resolves them (nearest node_modules first). Reachability
 * matters besides the lock's flags: the dev host is an npm workspace (devhost/), whose own
 * dependencies (Azurite) the lock cannot mark dev.
 */
export function productionPackages(root: string): string[] {
  const lock = readJson<{
    packages?: Record<string, LockPackage & { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }>;
  }>(path.join(root, 'package-lock.json'));
  const entries = lock.packages ?? {};
  const resolve = (name: string, from: string): string | null => {
    for (let base = from; ; ) {
      const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`;
      if (entries[candidate]) return candidate;
      if (base === '') return null;
      const cut = base.lastIndexOf('node_modules/');
      base = cut <= 0 ? '' : base.slice(0, cut - 1);
    }
  };
  const reached = new Set<string>();
  const visit = (key: string) => {
    const entry = entries[key];
    if (!entry) return;
    for (const name of Object.keys({ ...entry.dependencies, ...entry.peerDependencies })) {
      const found = resolve(name, key);
      if (found && !reached.has(found)) {
        reached.add(found);
        visit(found);
      }
    }
  };
  visit('');
  return [...reached]
    .filter((key) => {
      const entry = entries[key]!;
      return !entry.dev && !entry.devOptional && !entry.optional && !entry.link;
    })
    .sort();
}

/** What a deploy of this project holds: the built files the entry points load, and the production packages. */
export function stagePlan(root: string): { files: string[]; packages: string[]; manifest: PackageJson } {
  const manifest = readJson<PackageJson>(path.join(root, 'package.json'));
  const loaded = loadedFiles(root);
  const dependencies = manifest.dependencies ?? {};
  const undeclared = loaded.packages.filter((name) => !(name in dependencies));
  if (undeclared.length > 0)
    throw new StageError(`the app requires ${undeclared.join(', ')}, which package.json lists outside "dependencies": move it there`);
  const staged: PackageJson = {
    name: manifest.name,
    version: manifest.version,
    main: manifest.main,
    dependencies,
    overrides: manifest.overrides,
    engines: manifest.engines,
  };
  return { files: ['host.json', ...loaded.files], packages: productionPackages(root), manifest: staged };
}

const FUNCIGNORE = '# Staged by `npm run package` (deploy/stage.ts): everything here is deployed.\n';

/** A package's own files: its nested node_modules are packages of their own in the lock, staged (or not) on their own. */
const ownFile = (source: string) => (from: string) =>
  from === source || !path.relative(source, from).split(path.sep).includes('node_modules');

/** Writes the staged folder: the plan's files, its package.json, a .funcignore naming nothing, and a copy of each production package. */
export function stage(root: string, out = path.join(root, STAGE_DIR)): { files: string[]; packages: string[] } {
  const plan = stagePlan(root);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const file of plan.files) cpSync(path.join(root, file), path.join(out, file));
  writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(plan.manifest, null, 2)}\n`);
  writeFileSync(path.join(out, '.funcignore'), FUNCIGNORE);
  for (const key of plan.packages) {
    const source = path.join(root, key);
    if (!existsSync(source)) throw new StageError(`${key} is not installed: run "npm ci" first`);
    cpSync(source, path.join(out, key), { recursive: true, dereference: true, filter: ownFile(source) });
  }
  return { files: plan.files, packages: plan.packages };
}

/** Every file a zip of the staged folder holds (the folder less its .funcignore, which azd never zips), with its size. */
function packageContents(root: string): Array<{ file: string; bytes: number }> {
  const plan = stagePlan(root);
  const entries: Array<{ file: string; bytes: number }> = [
    { file: 'package.json', bytes: Buffer.byteLength(`${JSON.stringify(plan.manifest, null, 2)}\n`) },
    ...plan.files.map((file) => ({ file, bytes: statSync(path.join(root, file)).size })),
  ];
  for (const key of plan.packages) {
    const source = realpathSync(path.join(root, key));
    const own = ownFile(source);
    for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
      const file = path.join(entry.parentPath, entry.name);
      if (!entry.isFile() || !own(file)) continue;
      entries.push({ file: `${key}/${path.relative(source, file).split(path.sep).join('/')}`, bytes: statSync(file).size });
    }
  }
  return entries.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

if (require.main === module) {
  try {
    const root = process.cwd();
    const { files, packages } = stage(root);
    const bytes = packageContents(root).reduce((sum, entry) => sum + entry.bytes, 0);
    process.stdout.write(
      `Staged ${STAGE_DIR}/: ${files.length} built files, ${packages.length} production packages, ${(bytes / 1024 / 1024).toFixed(1)} MB\n`,
    );
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
