import { execFile } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startLocalDevLoop } from '../../devhost/test/devHost';
import { type Exited, runToExit } from '../support/childProcess';
import { useTempDirs } from '../support/tempDirs';

/**
 * The documented commands that need no Azure, run as a new user runs them: from a fresh clone of
 * the repository (git clone of the committed HEAD, nothing beside it: no ../shared), built, with
 * the app running as `npm start` runs it (its dev loop, on free ports, with an in-memory Azurite;
 * the compiler replaced by an idle stand-in, since the clone is built once). node_modules is
 * linked rather than installed (npm ci is what .ci/run checks).
 *
 * The commands are read from the clone: every line of each ```sh block right after a
 * `<!-- run-from-clone -->` line of COMMANDS_FILE. The first runs through `npx --no-install` (never
 * the registry), which resolves the project's own bin; the others run that bin with node directly
 * (what npx runs, without its 5 s of start-up each). `send` gets the running app's --url when it
 * has none, and a command must exit 0, or the code a comment line just above it names ("… exit 1").
 */
const COMMANDS_FILE = 'docs/local-development.md';
const ROOT = path.resolve(__dirname, '..', '..');
const tempDir = useTempDirs();

export interface DocumentedCommand {
  command: string;
  exitCode: number;
}

export function documentedCommands(markdown: string): DocumentedCommand[] {
  const commands: DocumentedCommand[] = [];
  for (const [, block] of markdown.matchAll(/^<!-- run-from-clone -->\n```sh\n([\s\S]*?)\n```$/gm)) {
    let expected = 0;
    const lines = block!.replace(/\\\n\s*/g, '').split('\n');
    for (const line of lines) {
      const text = line.trim();
      if (!text) continue;
      if (text.startsWith('#')) {
        expected = Number(/\bexit (\d+)\b/.exec(text)?.[1] ?? 0);
        continue;
      }
      commands.push({ command: text.replace(/\s+#.*$/, ''), exitCode: expected });
      expected = 0;
    }
  }
  return commands;
}

function sh(command: string, cwd: string): Promise<Exited> {
  return runToExit('bash', ['-c', command], {
    cwd,
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'], APPLICATIONINSIGHTS_CONNECTION_STRING: '' },
  });
}

describe('the documented commands, from a fresh clone', () => {
  it('reads the marked blocks: continuations joined, comments skipped, the exit code a comment names', () => {
    expect(
      documentedCommands(
        '<!-- run-from-clone -->\n```sh\n# refused, exit 1\nnpx a \\\n  --b c   # note\n\nnpx d\n```\n```sh\nnpx not-marked\n```\n',
      ),
    ).toEqual([
      { command: 'npx a --b c', exitCode: 1 },
      { command: 'npx d', exitCode: 0 },
    ]);
  });

  it('send to the running app, inspect and register --plan all work with nothing beside the clone', async () => {
    const clone = path.join(tempDir('clone-'), 'app');
    await promisify(execFile)('git', ['clone', '--quiet', ROOT, clone]);
    expect(existsSync(path.join(clone, '..', 'shared'))).toBe(false);
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { cwd: clone });

    const commands = documentedCommands(readFileSync(path.join(clone, COMMANDS_FILE), 'utf8'));
    expect(commands.length).toBeGreaterThanOrEqual(8);
    expect(commands.map(({ command }) => command.split(' ').slice(0, 3).join(' '))).toEqual(
      expect.arrayContaining(['npx dataverse-webhooks send', 'npx dataverse-webhooks inspect', 'npx dataverse-webhooks register']),
    );

    const { loop, url } = await startLocalDevLoop({ projectRoot: clone });
    try {
      const bin = JSON.parse(readFileSync(path.join(clone, 'package.json'), 'utf8')).bin['dataverse-webhooks'];
      for (const [index, { command, exitCode }] of commands.entries()) {
        let line = command.replace(/^npx dataverse-webhooks /, index === 0 ? 'npx --no-install dataverse-webhooks ' : `node ${bin} `);
        if (/ send /.test(line) && !line.includes('--url')) line = line.replace(' send ', ` send --url ${url} `);
        const result = await sh(line, clone);
        expect(result.code, `${command}\n${result.stdout}\n${result.stderr}`).toBe(exitCode);
        expect(result.stderr, command).not.toMatch(/\n\s+at /);
        if (/ send samples\//.test(command)) expect(result.stdout).toMatch(/^202 Accepted\s+eventId /);
      }
      // The sample sent first reached its handler.
      await loop.waitFor(/Account created eventId=/, 'the example handler');
    } finally {
      loop.child.kill('SIGINT');
      await loop.exited;
    }
  }, 180_000);
});
