import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registryOf } from '../../src/handlerApi/load';
import { handlerFiles } from '../../src/handlers';

/**
 * What a new user reads first is true: the README's and docs/handlers.md's first handler, pasted
 * into src/handlers beside the shipped examples and listed, loads (its name is its own); and the
 * Node versions the README names are those package.json's engines admit, including what Azure
 * runs (the Bicep's runtime version, which .nvmrc names) and the current LTS.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
// Inside the repository, so the pasted files resolve the app's modules as src/handlers does.
const PASTED = path.join(ROOT, 'node_modules', '.cache', `pasted-handlers-${process.pid}`);
afterAll(() => rmSync(PASTED, { recursive: true, force: true }));

/** The ```ts blocks of a markdown section (from its heading to the next heading of its level or above). */
function tsBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const level = /^#+/.exec(heading)![0].length;
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level}} `, 'm'));
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```ts\n([\s\S]*?)\n```$/gm)].map((match) => match[1]!);
}

describe('the first handler the docs show', () => {
  const blocks = [
    ...tsBlocks(read('README.md'), '## Your first handler')
      .slice(0, 1)
      .map((code) => ({ from: 'README.md', code })),
    ...tsBlocks(read('docs/handlers.md'), '## Writing a handler')
      .slice(0, 1)
      .map((code) => ({ from: 'docs/handlers.md', code })),
    ...tsBlocks(read('docs/handlers.md'), '### Wiring: export and list')
      .filter((code) => code.startsWith('// src/handlers/') && !code.startsWith('// src/handlers/index.ts'))
      .map((code) => ({ from: 'docs/handlers.md#wiring', code })),
  ];

  it.each(blocks.map((block, index) => [`${block.from} (block ${index + 1})`, block.code]))(
    '%s loads beside the shipped examples',
    async (_name, code) => {
      const file = path.join(PASTED, `handler${blocks.findIndex((block) => block.code === code)}.ts`);
      mkdirSync(PASTED, { recursive: true });
      const handlerApi = path
        .relative(PASTED, path.join(ROOT, 'src', 'handlerApi'))
        .split(path.sep)
        .join('/');
      expect(code).toContain("from '../handlerApi'");
      writeFileSync(file, code.replace("from '../handlerApi'", `from '${handlerApi}'`));
      const pasted = (await import(file)) as object;
      expect(() => registryOf([...handlerFiles, pasted], [])).not.toThrow();
    },
  );

  it('finds the blocks it checks', () => {
    expect(blocks.map((block) => block.from)).toEqual(['README.md', 'docs/handlers.md', 'docs/handlers.md#wiring']);
  });
});

describe('the Node versions', () => {
  const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
  const majors = engines.split('||').map((range) => Number(/^\^(\d+)/.exec(range.trim())?.[1]));
  const azure = Number(/runtime: \{\s+name: 'node'\s+version: '(\d+)'/.exec(read('infra/modules/functionApp.bicep'))?.[1]);

  it('engines admits what Azure runs (.nvmrc names it), the current LTS (24) and 20.19', () => {
    expect(azure).toBeGreaterThan(0);
    expect(Number(read('.nvmrc').trim())).toBe(azure);
    expect(majors).toEqual(expect.arrayContaining([azure, 24, 20]));
    expect(engines).toMatch(/\^20\.19\b/);
  });

  it('the README names each of them, and which one Azure runs', () => {
    const setUp = /^On a fresh clone, with ([\s\S]*?):$/m.exec(read('README.md'))?.[1]?.replace(/\s+/g, ' ') ?? '';
    expect(setUp).toContain(`Node ${azure} (\`.nvmrc\`; what Azure runs)`);
    for (const major of majors) expect(setUp).toMatch(new RegExp(`Node ${major}\\b`));
  });
});
