import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Every relative link in the README and the manual points at a file of the repository, and every
 * #anchor at a heading of that file, with the anchors GitHub makes of headings.
 */
const root = path.resolve(__dirname, '..', '..');

function markdownFiles(): string[] {
  const docs = readdirSync(path.join(root, 'docs'), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.md'))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
  return ['README.md', ...['samples/README.md'].filter((file) => existsSync(path.join(root, file))), ...docs];
}

/** Text outside fenced code blocks, where a `[x](y)` is only text. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = heading!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  file: string;
  target: string;
}

function linksOf(file: string): Link[] {
  const text = prose(readFileSync(path.join(root, file), 'utf8'));
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => ({ file, target: match[1]! }))
    .filter((link) => !/^[a-z]+:/.test(link.target));
}

function broken(link: Link): string | null {
  const [target = '', anchor] = link.target.split('#');
  const resolved = target === '' ? path.join(root, link.file) : path.resolve(path.dirname(path.join(root, link.file)), target);
  if (!existsSync(resolved)) return `${link.file}: ${link.target} (no such file)`;
  if (anchor === undefined) return null;
  if (!resolved.endsWith('.md')) return `${link.file}: ${link.target} (an anchor into a file that is not Markdown)`;
  return anchorsOf(readFileSync(resolved, 'utf8')).has(anchor) ? null : `${link.file}: ${link.target} (no such heading)`;
}

describe('the README and docs/', () => {
  const files = markdownFiles();
  const links = files.flatMap(linksOf);

  it('are read: the manual has its pages, and they link to each other', () => {
    expect(files).toContain('docs/handlers.md');
    expect(links.filter((link) => link.file === 'README.md').length).toBeGreaterThan(10);
  });

  it('makes the anchors GitHub makes', () => {
    expect([...anchorsOf('# Typed tables: `types`\n## What a 503 means.\n## Limits\n## Limits\n```\n# not a heading\n```')]).toEqual([
      'typed-tables-types',
      'what-a-503-means',
      'limits',
      'limits-1',
    ]);
  });

  it('has no broken link: every file exists, every anchor is a heading', () => {
    expect(links.map(broken).filter((problem) => problem !== null)).toEqual([]);
  });

  it('points users at nothing outside the project (a clone has no ../shared)', () => {
    const outside = files.filter((file) => readFileSync(path.join(root, file), 'utf8').includes('../shared'));
    expect(outside).toEqual([]);
  });
});
