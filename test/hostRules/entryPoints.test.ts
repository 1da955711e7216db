import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryPointFiles, expandBraces } from '../../hostRules/entryPoints';
import { useTempDirs } from '../support/tempDirs';

const tempDir = useTempDirs();

describe("the Node worker's entry points: package.json main, as the worker expands it", () => {
  it('expands {a,b} in order, nested ones too', () => {
    expect(expandBraces('dist/src/{index.js,functions/*.js}')).toEqual(['dist/src/index.js', 'dist/src/functions/*.js']);
    expect(expandBraces('{a,{b,c}}.js')).toEqual(['a.js', 'b.js', 'c.js']);
    expect(expandBraces('plain.js')).toEqual(['plain.js']);
  });

  it('loads each alternative in turn, its matches in name order, each file once, and no dot file for a wildcard', () => {
    const root = tempDir('entry-points-');
    mkdirSync(path.join(root, 'dist', 'src', 'functions'), { recursive: true });
    for (const file of ['index.js', 'functions/b.js', 'functions/a.js', 'functions/.hidden.js', 'functions/a.js.map'])
      writeFileSync(path.join(root, 'dist', 'src', file), '');
    expect(entryPointFiles('dist/src/{index.js,functions/*.js,index.js}', root)).toEqual([
      'dist/src/index.js',
      'dist/src/functions/a.js',
      'dist/src/functions/b.js',
    ]);
    expect(entryPointFiles('dist/**/a.js', root)).toEqual(['dist/src/functions/a.js']);
  });
});
