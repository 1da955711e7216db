import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ignore from 'ignore';
import { parse } from 'yaml';
import { runToExit } from '../support/childProcess';
import type { ZipEntry } from '../support/zip';

/**
 * What `azd package` / `azd deploy` / `azd up` do with a Node service hosted on a Function App,
 * step by step, from the source of Azure/azure-dev at ae35809f496491989273d0edefdeb70f245f399b
 * (paths under cli/azd/):
 *
 * 1. internal/cmd/service_graph.go: the package step of each service calls
 *    serviceManager.Package; pkg/project/service_manager.go Package first runs Restore when the
 *    framework requires it (framework_service_node.go Requirements: RequireRestore true,
 *    RequireBuild false, so `azd deploy` never runs Build on its own).
 * 2. Restore (framework_service_node.go, pkg/tools/node/detect.go IsDependenciesUpToDate): skipped
 *    when node_modules/.package-lock.json is at least as new as package-lock.json; otherwise
 *    `npm install --no-audit --no-fund --prefer-offline` in the service folder (pkg/tools/node/node.go).
 * 3. Package runs inside runCommand(ServiceEventPackage) (service_manager.go), which raises
 *    `prepackage`, runs the packaging, then raises `postpackage` (pkg/ext/event_dispatcher.go).
 *    A service hook runs in the service's folder (cmd/middleware/hooks.go: Cwd: service.Path());
 *    its `posix` form on Linux and macOS, its `windows` form on Windows (pkg/ext/hooks_manager.go);
 *    an inline `sh` script is written to a temp file as "#!/bin/sh\nset -e\n\n# Auto generated file
 *    from Azure Developer CLI\n<run>\n" (pkg/tools/bash/bash.go Prepare) and run as
 *    `/bin/sh -c <file>` (pkg/exec/command_runner.go newCmdTree).
 * 4. The Node framework's Package (framework_service_node.go): `npm run build --if-present`, then the
 *    package folder is the service folder joined with `dist` (azure.yaml; no build artifact exists
 *    in a package run), which must exist and not be empty, else: "package source '<folder>' is
 *    empty or does not exist…".
 * 5. The Function App target's Package (service_target_functionapp.go, project_utils.go
 *    createDeployableZip): the folder zipped (pkg/rzip/rzip.go: symlinks followed), leaving out
 *    `.azure` folders, every file named `.funcignore`, every `local.settings.json`, and whatever the
 *    folder's own `.funcignore` matches (github.com/denormal/go-gitignore, gitignore rules); with no
 *    .funcignore, a JavaScript service's node_modules is left out unless remoteBuild is false.
 * 6. Deploy to Flex Consumption (service_target_functionapp.go zipDeploy,
 *    resolveFunctionAppRemoteBuild): the zip is uploaded; remote build (an `npm install` on Azure's
 *    side) is on exactly when the .funcignore of the *service folder* (not dist) excludes node_modules.
 */

export interface AzdService {
  name: string;
  /** The service folder (azure.yaml `project`), absolute. */
  folder: string;
  /** azure.yaml `dist`. */
  dist: string;
  language: string;
  host: string;
  hooks: Record<string, { posix?: { shell?: string; run?: string }; windows?: { shell?: string; run?: string } }>;
}

export function azdService(projectRoot: string, name: string): AzdService {
  const config = parse(readFileSync(path.join(projectRoot, 'azure.yaml'), 'utf8')) as {
    services: Record<string, { project: string; dist?: string; language: string; host: string; hooks?: AzdService['hooks'] }>;
  };
  const service = config.services[name];
  if (!service) throw new Error(`azure.yaml has no service ${name}`);
  return {
    name,
    folder: path.resolve(projectRoot, service.project),
    dist: service.dist ?? '',
    language: service.language,
    host: service.host,
    hooks: service.hooks ?? {},
  };
}

export interface StepResult {
  step: string;
  command: string;
  ms: number;
}

/** Runs a command as azd's command runner does (no shell unless asked), failing with its output. */
async function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { code, stdout, stderr } = await runToExit(command, args, { cwd, env });
  if (code === 0) return;
  const output = `${stdout}${stderr}`;
  // With npm_config_offline, a package missing from the npm cache cannot be fetched.
  const hint = /ENOTCACHED/.test(output) ? ' (the npm cache lacks a package: run "npm ci" in the project first)' : '';
  throw new Error(`${command} ${args.join(' ')} exited ${code} in ${cwd}${hint}:\n${output.slice(-4000)}`);
}

/** Step 2's check: node/detect.go IsDependenciesUpToDate for npm. */
export function dependenciesUpToDate(folder: string): boolean {
  const lock = path.join(folder, 'package-lock.json');
  const marker = path.join(folder, 'node_modules', '.package-lock.json');
  if (!existsSync(lock) || !existsSync(path.join(folder, 'node_modules')) || !existsSync(marker)) return false;
  return statSync(marker).mtimeMs >= statSync(lock).mtimeMs;
}

/** Step 3: a service hook, as azd runs it on this platform. */
async function runHook(service: AzdService, hookName: string, env: NodeJS.ProcessEnv, steps: StepResult[]): Promise<void> {
  const hook = service.hooks[hookName];
  if (!hook) return;
  const form = process.platform === 'win32' ? hook.windows : hook.posix;
  if (!form?.run) throw new Error(`the ${hookName} hook has no ${process.platform === 'win32' ? 'windows' : 'posix'} form`);
  if (process.platform === 'win32') throw new Error('this emulation runs the posix form only');
  if (form.shell !== 'sh') throw new Error(`the posix ${hookName} hook is not an sh script`);
  const dir = mkdtempSync(path.join(tmpdir(), `azd-${hookName}-`));
  const script = path.join(dir, `azd-${hookName}.sh`);
  writeFileSync(script, `#!/bin/sh\nset -e\n\n# Auto generated file from Azure Developer CLI\n${form.run}\n`);
  chmodSync(script, 0o755);
  const started = Date.now();
  try {
    await run('/bin/sh', ['-c', script], service.folder, env);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  steps.push({ step: hookName, command: form.run, ms: Date.now() - started });
}

/**
 * Steps 1 to 4: restore, the package hooks around the framework's package. Returns the folder azd
 * zips, or throws azd's own error when it is missing or empty.
 */
export async function azdPackageFolder(service: AzdService, env: NodeJS.ProcessEnv): Promise<{ folder: string; steps: StepResult[] }> {
  if (service.language !== 'js' || service.host !== 'function') throw new Error('this emulation follows a js service on a function host');
  const steps: StepResult[] = [];
  const timed = async (step: string, command: string, args: string[]) => {
    const started = Date.now();
    await run(command, args, service.folder, env);
    steps.push({ step, command: `${command} ${args.join(' ')}`, ms: Date.now() - started });
  };
  if (!dependenciesUpToDate(service.folder)) await timed('restore', 'npm', ['install', '--no-audit', '--no-fund', '--prefer-offline']);
  await runHook(service, 'prepackage', env, steps);
  await timed('package (framework)', 'npm', ['run', 'build', '--if-present']);
  const folder = path.join(service.folder, service.dist);
  let entries: string[] = [];
  try {
    entries = readdirSync(folder);
  } catch {
    entries = [];
  }
  if (entries.length === 0)
    throw new Error(
      `package source '${folder}' is empty or does not exist. If your service has custom packaging requirements create a script named 'build' within your package.json and ensure your package artifacts are written to the '${folder}' directory`,
    );
  await runHook(service, 'postpackage', env, steps);
  return { folder, steps };
}

/** Step 5: the entries of the zip azd makes of the folder, in the order it walks it. */
export function* deployableZipEntries(root: string, service: AzdService): Generator<ZipEntry> {
  const ignoreFile = service.host === 'function' ? '.funcignore' : '';
  const ignoreText = ignoreFile && existsSync(path.join(root, ignoreFile)) ? readFileSync(path.join(root, ignoreFile), 'utf8') : null;
  // go-gitignore reads the file with a UTF-8 BOM stripped (project_utils.go stripUTF8BOM).
  const ignorer = ignoreText === null ? null : ignore().add(ignoreText.replace(/^\uFEFF/, ''));
  const walk = function* (dir: string, relative: string): Generator<ZipEntry> {
    for (const name of readdirSync(dir).sort()) {
      const source = path.join(dir, name);
      const link = lstatSync(source);
      const isDir = link.isSymbolicLink() ? statSync(source).isDirectory() : link.isDirectory();
      const entryPath = relative ? `${relative}/${name}` : name;
      if (name === '.azure' && isDir) continue;
      if (name === ignoreFile && !isDir) continue;
      if (service.host === 'function' && name === 'local.settings.json' && !isDir) continue;
      if (ignorer) {
        if (ignorer.ignores(isDir ? `${entryPath}/` : entryPath)) continue;
      } else if (service.language === 'js' && name === 'node_modules' && isDir) {
        continue;
      }
      if (isDir) yield* walk(source, entryPath);
      else yield { name: entryPath, data: readFileSync(source), mode: statSync(source).mode & 0o777 };
    }
  };
  yield* walk(root, '');
}

/** Step 6: whether Flex Consumption builds remotely, from the service folder's .funcignore. */
export function remoteBuild(service: AzdService): boolean {
  const file = path.join(service.folder, '.funcignore');
  if (!existsSync(file)) return true;
  return ignore()
    .add(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''))
    .ignores('node_modules/');
}
