// Every relative link in the repository's Markdown files points at a file that exists, and at a heading that
// exists when it names one (`file.md#heading`, or `#heading` in the same file), with GitHub's heading ids.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The Markdown files git tracks, or would (untracked, not ignored). */
function markdownFiles() {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.md'], { cwd: root, encoding: 'utf8' });
  return listed.split('\n').filter(Boolean).filter((path) => existsSync(join(root, path)));
}

/** The links of a Markdown text, outside code blocks and inline code: [text](target) and ![alt](target). */
function linksOf(text) {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1]);
}

/** GitHub's id of a heading: lower case, punctuation dropped (but - and _), spaces as -. */
function headingId(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function headingIds(text) {
  const prose = text.replace(/```[\s\S]*?```/g, '');
  return new Set([...prose.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => headingId(match[1])));
}

test('every relative link in the Markdown files points at a file (and heading) that exists', () => {
  const files = markdownFiles();
  assert.ok(files.includes('README.md') && files.length > 10, `the Markdown files were found: ${files.length}`);
  const broken = [];
  let checked = 0;
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const link of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:, ...
      checked += 1;
      const [path, anchor] = link.split('#');
      const target = path === '' ? join(root, file) : resolve(dirname(join(root, file)), decodeURI(path));
      if (!existsSync(target)) {
        broken.push(`${file}: ${link} (no such file)`);
        continue;
      }
      if (anchor && statSync(target).isFile() && target.endsWith('.md') && !headingIds(readFileSync(target, 'utf8')).has(anchor)) {
        broken.push(`${file}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(checked > 30, `links were checked: ${checked}`);
});
