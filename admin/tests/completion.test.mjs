// The SQL editor's completion (src/completion.ts) as a unit: no server, no browser. The
// TypeScript sources are transpiled (type-stripped) into a temporary directory and imported.
// The rules it shares with the shell's completion are the cases of
// cli/tests/completion-cases.json (its `about` says what a case asserts); the tests after them
// are the editor's own: how it ranks what it offers, and what the list on screen shows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const out = mkdtempSync(join(tmpdir(), 'kalamdb-completion-'));
after(() => rmSync(out, { recursive: true, force: true }));
for (const name of ['sqlsyntax', 'completion']) {
  const source = readFileSync(new URL(`../src/${name}.ts`, import.meta.url), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
  });
  // Vite resolves `./sqlsyntax`; Node wants the file's name.
  writeFileSync(join(out, `${name}.mjs`), outputText.replace(/from '\.\/(\w+)'/g, "from './$1.mjs'"));
}
const { complete } = await import(pathToFileURL(join(out, 'completion.mjs')).href);

const shared = JSON.parse(readFileSync(new URL('../../complete/tests/completion-cases.json', import.meta.url), 'utf8'));
/** The shared cases' catalog, as the console loads one (types only show as details). */
const catalog = {
  namespaces: shared.catalog.namespaces,
  tables: shared.catalog.tables.map((t) => ({ ...t, type: 'user', columns: t.columns.map((name) => ({ name, type: 'Utf8' })) })),
};
const CASE_KEYS = new Set(['name', 'sql', 'namespace', 'columns', 'exactly', 'offered', 'not_offered']);
const sorted = (names) => [...names].sort();

for (const c of shared.cases) {
  test(`shared case: ${c.name}`, () => {
    assert.deepEqual(Object.keys(c).filter((k) => !CASE_KEYS.has(k)), [], 'unknown keys');
    const caret = c.sql.indexOf('|');
    assert.ok(caret >= 0 && c.sql.lastIndexOf('|') === caret, 'the sql has one `|`, the caret');
    const text = c.sql.slice(0, caret) + c.sql.slice(caret + 1);
    // The whole list, not the part shown on screen.
    const items = complete(text, caret, catalog, c.namespace, true, Infinity)?.items ?? [];
    const all = sorted(new Set(items.map((i) => i.text)));
    const columns = sorted(new Set(items.filter((i) => i.kind === 'column').map((i) => i.text)));
    if (c.columns) assert.deepEqual(columns, sorted(c.columns), 'columns');
    if (c.exactly) assert.deepEqual(all, sorted(c.exactly), 'exactly');
    assert.deepEqual((c.offered ?? []).filter((o) => !all.includes(o)), [], 'not offered');
    assert.deepEqual((c.not_offered ?? []).filter((o) => all.includes(o)), [], 'offered');
  });
}

test('unfinished statements complete and never throw', () => {
  for (const text of shared.unfinished) {
    for (let caret = 0; caret <= text.length; caret++) {
      for (const explicit of [true, false]) complete(text, caret, catalog, 'app', explicit);
    }
  }
});

for (const p of shared.pasted) {
  test(`pasted: ${p.name}`, () => {
    const text = p.parts.map(([part, times]) => part.repeat(times)).join('');
    const items = complete(text, text.length, catalog, 'app', true, Infinity)?.items ?? [];
    const all = new Set(items.map((i) => i.text));
    assert.deepEqual(p.offered.filter((o) => !all.has(o)), [], 'not offered');
  });
}

/** What is offered with the caret at the end of `before`, the text going on with `after`. */
function offered(before, after = '', { explicit = true } = {}) {
  return complete(before + after, before.length, catalog, 'app', explicit)?.items ?? null;
}
const texts = (before, after, options) => offered(before, after, options)?.map((c) => c.text) ?? null;
const columnNames = (before, after = '') => offered(before, after).filter((c) => c.kind === 'column').map((c) => c.text);

const OPEN = 'WITH open AS (SELECT id, title AS name FROM app.todos WHERE NOT done) ';
const TODOS = ['id', 'title', 'done', 'list_id'];

test("the query's own names come first", () => {
  // A CTE's columns, with the CTE's name as their detail.
  assert.deepEqual(offered(`${OPEN}SELECT `, ' FROM open').slice(0, 2).map((c) => [c.kind, c.text, c.detail]), [
    ['column', 'id', 'open'],
    ['column', 'name', 'open'],
  ]);
  const sub = ' FROM (SELECT title, count(*) AS n FROM app.todos GROUP BY title) s';
  assert.deepEqual(columnNames('SELECT ', sub), ['title', 'n']);
  // A subquery's own table's, then (correlated) the outer query's.
  assert.deepEqual(columnNames('SELECT * FROM app.todos WHERE title IN (SELECT ', ' FROM app.tags)'), ['tag', ...TODOS]);
  // In ORDER BY, the select list's names, then the tables' columns.
  const ranked = 'SELECT title, CASE WHEN done THEN 1 ELSE 0 END AS rank FROM app.todos ORDER BY ';
  assert.deepEqual(columnNames(ranked), ['title', 'rank', ...TODOS.filter((c) => c !== 'title')]);
  // Columns, then keywords and functions, then tables and namespaces.
  const kinds = [...new Set(complete('SELECT  FROM app.lists', 7, catalog, 'app', true, Infinity).items.map((c) => c.kind))];
  assert.deepEqual(kinds, ['column', 'keyword', 'function', 'table', 'namespace']);
});

test('tables complete by their own name and as ns.table', () => {
  assert.deepEqual(texts('SELECT * FROM tod'), ['todos', 'app.todos']);
  assert.deepEqual(texts('SELECT * FROM ev'), ['analytics.events']);
  assert.deepEqual(offered('SELECT * FROM app.li')[0], { text: 'app.lists', kind: 'table', detail: 'user' });
});

test('a quoted name is replaced whole, its closing quote included', () => {
  /** What the text becomes when the first entry offered at the caret (at `|`) is taken. */
  const taken = (sql) => {
    const caret = sql.indexOf('|');
    const text = sql.replace('|', '');
    const found = complete(text, caret, catalog, 'app', false);
    return text.slice(0, found.from) + found.items[0].text + text.slice(found.to);
  };
  assert.equal(taken('SELECT "ti| FROM app.todos'), 'SELECT "title" FROM app.todos');
  assert.equal(taken('SELECT "ti|" FROM app.todos'), 'SELECT "title" FROM app.todos');
  assert.equal(taken('SELECT "ti|tl" FROM app.todos'), 'SELECT "title" FROM app.todos');
  assert.equal(taken('SELECT t."ti|, t.id FROM app.todos t'), 'SELECT t."title", t.id FROM app.todos t');
  // Unless asked for, nothing right after the opening quote, nor the name typed whole.
  assert.equal(complete('SELECT "', 8, catalog, 'app', false), null);
  assert.deepEqual(texts('SELECT "title', '" FROM app.todos', { explicit: false }), []);
});

test('the list on screen', () => {
  // At most 50 entries, the first ones.
  assert.equal(offered('SELECT ').length, 50);
  assert.equal(complete('SELECT ', 7, catalog, 'app', true, Infinity).items.length > 50, true);
  // Nothing inside a string or comment, or in a number.
  assert.equal(offered("SELECT 'ti"), null);
  assert.equal(offered('SELECT 1 /* ti'), null);
  assert.equal(offered('SELECT 12'), null);
  // Unless asked for (Ctrl+Space), an empty word gets nothing and the word itself is left out.
  assert.equal(offered('SELECT ', '', { explicit: false }), null);
  assert.ok(!texts('SELECT title', ' FROM app.todos', { explicit: false }).includes('title'));
  assert.ok(texts('SELECT title', ' FROM app.todos').includes('title'));
  // The word at the caret: what replaces it runs to its end.
  const found = complete('SELECT tit FROM app.todos', 'SELECT ti'.length, catalog, 'app', true);
  assert.deepEqual([found.from, found.to], ['SELECT '.length, 'SELECT tit'.length]);
});
