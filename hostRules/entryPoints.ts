import { readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Which files the Node worker loads for an app: package.json `main` is a glob, expanded as
 * Azure/azure-functions-nodejs-worker (v3.9) startApp.ts and loadScriptFile.ts expand it with
 * their glob library. One rule, which both the dev host's worker (devhost/functionsCore.ts, and its
 * watcher) and the deploy stager (deploy/stage.ts, which ships what the worker will load) follow;
 * it imports nothing but Node, and neither of them imports the other.
 */

/** Expands `{a,b}` alternatives in order (nested ones too), as the glob library the worker uses does. */
export function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) return [pattern];
  let depth = 0;
  const commas: number[] = [];
  for (let index = open; index < pattern.length; index++) {
    const char = pattern[index];
    if (char === '{') depth++;
    else if (char === '}' && --depth === 0) {
      const parts: string[] = [];
      let start = open + 1;
      for (const comma of commas) {
        parts.push(pattern.slice(start, comma));
        start = comma + 1;
      }
      parts.push(pattern.slice(start, index));
      const rest = pattern.slice(index + 1);
      return parts.flatMap((part) => expandBraces(`${pattern.slice(0, open)}${part}${rest}`));
    } else if (char === ',' && depth === 1) commas.push(index);
  }
  return [pattern];
}

function segmentMatcher(segment: string): RegExp {
  let source = '';
  for (let index = 0; index < segment.length; index++) {
    const char = segment[index]!;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '[') {
      const close = segment.indexOf(']', index + 1);
      if (close < 0) source += '\\[';
      else {
        source += `[${segment
          .slice(index + 1, close)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        index = close;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  // Like the worker's glob library, a wildcard does not match a leading dot.
  return new RegExp(segment.startsWith('.') ? `^${source}$` : `^(?!\\.)${source}$`);
}

function matchSegments(directory: string, segments: string[], relative: string, found: string[]): void {
  const [segment, ...rest] = segments;
  if (segment === undefined) return;
  let entries: Array<{ name: string; isDirectory: boolean; isFile: boolean }>;
  try {
    entries = readdirSync(directory, { withFileTypes: true })
      .map((entry) => ({ name: entry.name, isDirectory: entry.isDirectory(), isFile: entry.isFile() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return;
  }
  if (segment === '**') {
    matchSegments(directory, rest, relative, found);
    for (const entry of entries) {
      if (entry.isDirectory && !entry.name.startsWith('.'))
        matchSegments(path.join(directory, entry.name), segments, `${relative}${entry.name}/`, found);
    }
    return;
  }
  const matcher = segmentMatcher(segment);
  for (const entry of entries) {
    if (!matcher.test(entry.name)) continue;
    if (rest.length === 0 && entry.isFile) found.push(`${relative}${entry.name}`);
    else if (rest.length > 0 && entry.isDirectory)
      matchSegments(path.join(directory, entry.name), rest, `${relative}${entry.name}/`, found);
  }
}

/**
 * The files package.json `main` names, relative to the app folder, in the order the worker loads
 * them: each `{…}` alternative in turn (so `dist/src/{index.js,functions/*.js}` loads index.js
 * first), the files an alternative matches in name order.
 */
export function entryPointFiles(pattern: string, functionAppDirectory: string): string[] {
  const files: string[] = [];
  for (const expanded of expandBraces(pattern)) {
    const found: string[] = [];
    matchSegments(functionAppDirectory, expanded.replace(/^\.\//, '').split('/').filter(Boolean), '', found);
    for (const file of found) if (!files.includes(file)) files.push(file);
  }
  return files;
}
