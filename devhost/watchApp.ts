import { createHash } from 'node:crypto';
import { type FSWatcher, readdirSync, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import { expandBraces } from '../hostRules/entryPoints';

/**
 * Tells `npm start` when the app the local host runs has changed: a file under a folder the
 * package.json `main` glob reads from (the compiler's output, as `tsc -w` rewrites it; for
 * `dist/src/{index.js,functions/*.js}`, all of dist/src), a script at the app's root when the glob
 * reads from there, or host.json, local.settings.json or package.json. A file counts as changed
 * only when its content changed, so the compiler's first pass, which rewrites every file as it
 * was, reloads nothing.
 */

const ROOT_FILES = ['host.json', 'local.settings.json', 'package.json'];
const DEBOUNCE_MS = 300;

/**
 * The folders the `main` glob reads from: for each `{…}` alternative, its folders before the first
 * one with a wildcard ("." for the app's root). `dist/src/{index.js,functions/*.js}` gives
 * dist/src and dist/src/functions, of which dist/src covers both.
 */
export function entryPointDirectories(main: string | undefined): string[] {
  if (!main) return [];
  const directories = new Set<string>();
  for (const pattern of expandBraces(main)) {
    const segments = pattern.replace(/^\.\//, '').split('/').filter(Boolean);
    const fixed: string[] = [];
    for (const segment of segments.slice(0, -1)) {
      if (/[*?[]/.test(segment)) break;
      fixed.push(segment);
    }
    directories.add(fixed.length > 0 ? fixed.join('/') : '.');
  }
  const sorted = [...directories].sort();
  return sorted.filter(
    (directory) => directory === '.' || !sorted.some((other) => other !== '.' && other !== directory && directory.startsWith(`${other}/`)),
  );
}

function digest(file: string): string {
  try {
    return createHash('sha1').update(readFileSync(file)).digest('hex');
  } catch {
    return 'missing';
  }
}

function filesUnder(directory: string): string[] {
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const full = path.join(directory, entry.name);
    return entry.isDirectory() ? filesUnder(full) : entry.isFile() ? [full] : [];
  });
}

export interface AppWatcher {
  close(): void;
}

/** Calls `onChange` with the changed files (relative to the project), once they settle for 300 ms. */
export function watchApp(projectRoot: string, onChange: (files: string[]) => void): AppWatcher {
  const directories = entryPointDirectories(packageMain(projectRoot));
  const rootScripts = directories.includes('.');
  const watched = directories.filter((directory) => directory !== '.').map((directory) => path.join(projectRoot, directory));
  const isRootFile = (name: string) => ROOT_FILES.includes(name) || (rootScripts && /\.(c|m)?js$/.test(name));
  const rootFiles = readdirSync(projectRoot).filter(isRootFile);
  const changes = new SettledChanges(
    projectRoot,
    [...watched.flatMap(filesUnder), ...rootFiles.map((name) => path.join(projectRoot, name))],
    onChange,
  );

  const watchers: FSWatcher[] = [];
  const tryWatch = (target: string, recursive: boolean, listener: (filename: string) => void) => {
    try {
      const watcher = watch(target, { recursive }, (_event, filename) => {
        if (filename) listener(filename.toString());
      });
      watcher.on('error', () => watcher.close());
      watchers.push(watcher);
    } catch {
      // The folder does not exist (yet): nothing to watch there.
    }
  };
  tryWatch(projectRoot, false, (name) => {
    if (isRootFile(name)) changes.touched(path.join(projectRoot, name));
  });
  for (const directory of watched) tryWatch(directory, true, (name) => changes.touched(path.join(directory, name)));

  return {
    close() {
      changes.close();
      for (const watcher of watchers) watcher.close();
    },
  };
}

/** package.json `main`, or undefined without one: then only the root files are watched. */
function packageMain(projectRoot: string): string | undefined {
  try {
    const json = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { main?: unknown };
    return typeof json.main === 'string' ? json.main : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Files seen to move are only compared when the writes have settled: a file read half-written (the
 * compiler truncates, then writes) must not count as a change, nor its completion as a second one.
 */
class SettledChanges {
  private readonly known = new Map<string, string>();
  private readonly pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly projectRoot: string,
    files: string[],
    private readonly onChange: (files: string[]) => void,
  ) {
    for (const file of files) this.known.set(file, digest(file));
  }

  touched(file: string): void {
    this.pending.add(file);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.settle(), DEBOUNCE_MS);
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private settle(): void {
    const changed: string[] = [];
    for (const file of this.pending) {
      const now = digest(file);
      if (this.known.get(file) === now || (now === 'missing' && !this.known.has(file))) continue;
      this.known.set(file, now);
      changed.push(path.relative(this.projectRoot, file));
    }
    this.pending.clear();
    if (changed.length > 0) this.onChange(changed.sort());
  }
}
