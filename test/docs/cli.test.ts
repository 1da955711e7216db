import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, cliReference } from '../../src/cli/main';

describe('docs/cli.md', () => {
  const written = readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'cli.md'), 'utf8');

  it('holds every command with the usage text its --help prints', () => {
    for (const [name, command] of Object.entries(COMMANDS)) {
      expect(written).toContain(`## ${name}\n`);
      expect(written).toContain(command.usage);
    }
  });

  it('is what the commands say now (if not: npm run docs)', () => {
    expect(written).toBe(cliReference());
  });
});
