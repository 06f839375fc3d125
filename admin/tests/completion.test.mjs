// The SQL editor's completion (src/completion.ts) as a unit: no server, no browser. The
// TypeScript sources are transpiled (type-stripped) into a temporary directory and imported.
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

const columns = (...names) => names.map((name) => ({ name, type: 'Utf8' }));
const catalog = {
  namespaces: ['app', 'analytics'],
  tables: [
    { namespace: 'app', name: 'todos', type: 'user', columns: columns('id', 'title', 'done') },
    { namespace: 'app', name: 'tags', type: 'shared', columns: columns('tag') },
    { namespace: 'analytics', name: 'events', type: 'shared', columns: columns('tenant') },
  ],
};

/** The texts offered with the caret at the end of `before`, the text going on with `after`. */
function offered(before, after = '', { kinds = false } = {}) {
  const found = complete(before + after, before.length, catalog, 'app', true);
  return found?.items.map((c) => (kinds ? `${c.kind}:${c.text}` : c.text)) ?? null;
}
const columnsOffered = (before, after) => offered(before, after, { kinds: true }).filter((c) => c.startsWith('column:'));
/** The columns offered, without their kind. */
const columnNames = (before, after = '') => columnsOffered(before, after).map((c) => c.slice('column:'.length));

const OPEN = 'WITH open AS (SELECT id, title AS name FROM app.todos WHERE NOT done) ';

test("a CTE's columns complete by its name and alias", () => {
  assert.deepEqual(offered(`${OPEN}SELECT o.`, ' FROM open o'), ['o.id', 'o.name']);
  assert.deepEqual(offered(`${OPEN}SELECT open.`, ' FROM open'), ['open.id', 'open.name']);
  assert.deepEqual(offered(`${OPEN}SELECT o.n`, ' FROM open AS o'), ['o.name']);
  // Unqualified: its columns first, with the CTE's name as their detail.
  const found = complete(`${OPEN}SELECT  FROM open`, `${OPEN}SELECT `.length, catalog, 'app', true);
  assert.deepEqual(found.items.slice(0, 2).map((c) => [c.kind, c.text, c.detail]), [
    ['column', 'id', 'open'],
    ['column', 'name', 'open'],
  ]);
  // The CTE completes as a table after FROM and JOIN, in its statement only.
  assert.deepEqual(offered(`${OPEN}SELECT * FROM op`), ['open']);
  assert.ok(offered(`${OPEN}SELECT * FROM open JOIN `).includes('open'));
  assert.ok(!offered(`${OPEN}SELECT 1; SELECT * FROM `).includes('open'));
  // A column list names the columns.
  assert.deepEqual(offered('WITH x(a, b) AS (SELECT title, done FROM app.todos) SELECT x.', ' FROM x'), ['x.a', 'x.b']);
  assert.deepEqual(offered('WITH x(a, type) AS (SELECT title, done FROM app.todos) SELECT x.', ' FROM x'), ['x.a', 'x.type']);
  // Several CTEs, one over another: `*` stands for the first one's columns.
  const two = 'WITH a AS (SELECT title FROM app.todos), b AS (SELECT *, 1 AS one FROM a) SELECT b.';
  assert.deepEqual(offered(two, ' FROM b'), ['b.title', 'b.one']);
});

test('a subquery in FROM completes by its alias', () => {
  const sub = ' FROM (SELECT title, count(*) AS n FROM app.todos GROUP BY title) s';
  assert.deepEqual(offered('SELECT s.', sub), ['s.title', 's.n']);
  assert.deepEqual(columnsOffered('SELECT ', sub).slice(0, 2), ['column:title', 'column:n']);
  assert.deepEqual(
    offered('SELECT x.', ' FROM app.tags g JOIN (SELECT t.title AS x FROM app.todos t) AS x ON true'),
    ['x.x'],
  );
  assert.deepEqual(offered('SELECT x.', ' FROM app.tags, (SELECT tag AS y FROM app.tags) x'), ['x.y']);
  // A subquery elsewhere is no table: `m` is a column's alias.
  assert.deepEqual(offered('SELECT m.', ', (SELECT max(title) FROM app.todos) AS m FROM app.tags'), []);
  assert.deepEqual(offered('SELECT w.', ' FROM app.tags WHERE tag IN (SELECT title FROM app.todos) w'), []);
});

test('the names a select list gives', () => {
  const names = (body) => offered(`WITH q AS (${body}) SELECT q.`, ' FROM q');
  assert.deepEqual(names('SELECT * FROM app.todos t'), ['q.id', 'q.title', 'q.done']);
  assert.deepEqual(names('SELECT t.* FROM app.todos t JOIN app.tags g ON true'), ['q.id', 'q.title', 'q.done']);
  assert.deepEqual(names('SELECT g.*, t.title FROM app.todos t JOIN app.tags g ON true'), ['q.tag', 'q.title']);
  assert.deepEqual(names('SELECT app.tags.* FROM app.tags'), ['q.tag']);
  assert.deepEqual(names('SELECT * FROM app.todos t JOIN app.tags g ON true'), ['q.id', 'q.title', 'q.done', 'q.tag']);
  // Expressions: by their alias, with or without AS; without one, no name.
  assert.deepEqual(
    names(`SELECT count(*), count(*) c, upper(title) AS "Up", 'x' label, 1 FROM app.todos`),
    ['q.c', 'q.Up', 'q.label'],
  );
  assert.deepEqual(names('SELECT DISTINCT t.title, done::int, CASE WHEN done THEN 1 END, NULL FROM app.todos t'), ['q.title']);
  // Commas and FROM inside parentheses, strings and comments do not count.
  assert.deepEqual(names("SELECT coalesce(title, 'a, b FROM') AS v /* , x */ -- , y\n FROM app.todos"), ['q.v']);
  // A nested WITH: the names of its own SELECT.
  assert.deepEqual(names('WITH inner_q AS (SELECT title FROM app.todos) SELECT title AS t2 FROM inner_q'), ['q.t2']);
  assert.deepEqual(names('SELECT 1 AS a UNION SELECT 2 AS b'), ['q.a']);
  // `*` stands for the body's own FROM, not the tables of a subquery in it.
  assert.deepEqual(names('SELECT * FROM app.todos WHERE title IN (SELECT tag FROM app.tags)'), ['q.id', 'q.title', 'q.done']);
});

test('a ; in a string or comment ends no statement', () => {
  const all = ['t.id', 't.title', 't.done'];
  assert.deepEqual(offered("SELECT 'a;b', t.", ' FROM app.todos t'), all);
  assert.deepEqual(offered("SELECT id FROM app.todos t WHERE title = ';' AND t."), all);
  assert.deepEqual(offered('SELECT t.', ' /* ; */ FROM app.todos t -- ;\n'), all);
  assert.deepEqual(offered('SELECT * FROM app.todos t; SELECT t.'), []);
});

test('columns come from the query the caret is in and those around it', () => {
  const cols = (before, after = '') => columnsOffered(before, after).map((c) => c.slice('column:'.length));
  const todos = ['id', 'title', 'done'];
  assert.deepEqual(cols('SELECT ', ' FROM app.todos WHERE title IN (SELECT tag FROM app.tags)'), todos);
  // Inside the subquery, its own table's first, then (correlated) the outer query's.
  assert.deepEqual(cols('SELECT * FROM app.todos WHERE title IN (SELECT ', ' FROM app.tags)'), ['tag', ...todos]);
  // Not a sibling subquery's.
  const siblings = 'SELECT * FROM app.todos WHERE title IN (SELECT tag FROM app.tags) AND done IN (SELECT ';
  assert.deepEqual(cols(siblings, ' FROM analytics.events)'), ['tenant', ...todos]);
  assert.deepEqual(cols('SELECT (SELECT count(*) FROM app.tags), ', ' FROM app.todos'), todos);
  // Every table of a FROM list; a CTE's body or a subquery in FROM reads its own FROM only.
  assert.deepEqual(cols('SELECT ', ' FROM app.todos, app.tags g'), [...todos, 'tag']);
  assert.deepEqual(cols('SELECT * FROM app.todos, (SELECT ', ' FROM app.tags) s'), ['tag']);
  assert.deepEqual(cols('WITH a AS (SELECT ', ' FROM app.tags) SELECT * FROM app.todos'), ['tag']);
  assert.deepEqual(cols('WITH a AS (SELECT tag FROM app.tags) SELECT ', ' FROM app.todos'), todos);
  // Nothing named where the caret is: every column.
  assert.deepEqual(cols('SELECT t'), ['title', 'tag', 'tenant']);
});

test('names follow the queries they are given in', () => {
  // An alias: the innermost query's first, an outer one's from a subquery, an inner one's not
  // from outside.
  assert.deepEqual(offered('SELECT t.', ' FROM app.todos t WHERE EXISTS (SELECT 1 FROM app.tags t)'), ['t.id', 't.title', 't.done']);
  assert.deepEqual(offered('SELECT * FROM app.todos t WHERE EXISTS (SELECT t.', ' FROM app.tags t)'), ['t.tag']);
  assert.deepEqual(offered('SELECT * FROM app.todos o WHERE EXISTS (SELECT 1 FROM app.tags WHERE tag = o.'), ['o.id', 'o.title', 'o.done']);
  assert.deepEqual(offered('SELECT g.', ' FROM app.todos WHERE EXISTS (SELECT 1 FROM app.tags g)'), []);
  // A CTE: in the main query and the CTEs after it, not in its own body or earlier ones, nor
  // outside the query whose WITH it is in.
  const ctes = (before, after = '') => offered(before, after).filter((c) => c === 'a' || c === 'b');
  assert.deepEqual(ctes('WITH a AS (SELECT * FROM ', '), b AS (SELECT 1 AS one) SELECT 1'), []);
  assert.deepEqual(ctes('WITH a AS (SELECT 1 AS one), b AS (SELECT * FROM ', ') SELECT 1'), ['a']);
  assert.deepEqual(ctes('WITH a AS (SELECT 1 AS one), b AS (SELECT 1 AS one) SELECT * FROM '), ['a', 'b']);
  assert.deepEqual(ctes('WITH a AS (SELECT 1 AS one) SELECT * FROM app.todos WHERE EXISTS (SELECT * FROM '), ['a']);
  assert.deepEqual(ctes('SELECT * FROM (WITH a AS (SELECT 1 AS one) SELECT * FROM a) s, '), []);
  assert.deepEqual(offered('SELECT * FROM (WITH a AS (SELECT 1 AS one) SELECT a.', ' FROM a) s'), ['a.one']);
});

test('each branch of a UNION is a query of its own', () => {
  const todos = ['id', 'title', 'done'];
  // A branch reads its own FROM, not the other branches'.
  assert.deepEqual(columnNames('SELECT ', ' FROM app.todos UNION SELECT tag FROM app.tags'), todos);
  assert.deepEqual(columnNames('SELECT title FROM app.todos UNION ALL SELECT ', ' FROM app.tags'), ['tag']);
  assert.deepEqual(columnNames('SELECT title FROM app.todos INTERSECT SELECT ', ' FROM app.tags'), ['tag']);
  assert.deepEqual(columnNames('SELECT title FROM app.todos EXCEPT SELECT ', ' FROM app.tags'), ['tag']);
  // An alias is the branch's own.
  assert.deepEqual(offered('SELECT t.', ' FROM app.todos t UNION SELECT t.tag FROM app.tags t'), ['t.id', 't.title', 't.done']);
  assert.deepEqual(offered('SELECT t.title FROM app.todos t UNION SELECT t.', ' FROM app.tags t'), ['t.tag']);
  assert.deepEqual(offered('SELECT g.', ' FROM app.todos UNION SELECT tag FROM app.tags g'), []);
  // Every branch reads the CTEs before it and, in a correlated subquery, the outer query.
  const cte = 'WITH a AS (SELECT title AS name FROM app.todos) SELECT name FROM a UNION SELECT a.';
  assert.deepEqual(offered(cte, ' FROM a'), ['a.name']);
  const correlated = 'SELECT * FROM app.todos WHERE title IN (SELECT tag FROM app.tags UNION SELECT ';
  assert.deepEqual(columnNames(correlated, ' FROM analytics.events)'), ['tenant', ...todos]);
  const insert = ') SELECT tag FROM app.tags UNION SELECT tenant FROM analytics.events';
  assert.deepEqual(columnNames('INSERT INTO app.todos (', insert), todos);
  // ORDER BY after the last branch: the names the first branch gives, as in PostgreSQL.
  const ordered = 'SELECT title AS name FROM app.todos UNION SELECT tag FROM app.tags ORDER BY ';
  assert.deepEqual(columnNames(ordered), ['name']);
  assert.deepEqual(columnNames(`${ordered}name LIMIT `), ['name']);
  assert.deepEqual(columnNames('(SELECT title FROM app.todos) UNION (SELECT tag FROM app.tags) ORDER BY '), ['title']);
  // Inside parentheses that open no query, a UNION splits nothing around them.
  const inner = "SELECT * FROM app.todos t WHERE title IN ((SELECT tag FROM app.tags) UNION (SELECT 'x')) AND t.";
  assert.deepEqual(offered(inner), ['t.id', 't.title', 't.done']);
});

test('a recursive CTE is visible in its own body', () => {
  const body = 'WITH RECURSIVE r AS (SELECT title AS name FROM app.todos UNION ALL SELECT ';
  assert.deepEqual(offered(`${body}r.`, ' FROM r)'), ['r.name']);
  assert.deepEqual(columnNames(body, ' FROM r) SELECT * FROM r'), ['name']);
  assert.deepEqual(offered(`${body}p.`, ' FROM r AS p) SELECT 1'), ['p.name']);
  assert.ok(offered(`${body}name FROM `).includes('r'));
  // Without RECURSIVE, not in its own body.
  assert.ok(!offered('WITH r AS (SELECT 1 AS one UNION ALL SELECT 1 FROM ').includes('r'));
});

test('output aliases complete where they may be used', () => {
  // As the columns of a CTE or a subquery in FROM, with or without AS.
  const cases = "SELECT CASE WHEN done THEN 'y' END x, CASE WHEN done THEN 1 ELSE 0 END AS y, 1 one, done::int n FROM app.todos";
  assert.deepEqual(offered(`WITH q AS (${cases}) SELECT q.`, ' FROM q'), ['q.x', 'q.y', 'q.one', 'q.n']);
  assert.deepEqual(offered('SELECT s.', ` FROM (${cases}) s`), ['s.x', 's.y', 's.one', 's.n']);
  // In ORDER BY of the same query, first, then its tables' columns.
  const ranked = 'SELECT title, CASE WHEN done THEN 1 ELSE 0 END AS rank FROM app.todos ORDER BY ';
  assert.deepEqual(columnNames(ranked), ['title', 'rank', 'id', 'done']);
  assert.deepEqual(offered(`${ranked}ra`), ['rank']);
  assert.deepEqual(offered('SELECT title, CASE WHEN done THEN 1 ELSE 0 END rank FROM app.todos ORDER BY ra'), ['rank']);
  // Not in its WHERE, nor in another query's ORDER BY.
  assert.ok(!offered('SELECT title AS rank FROM app.todos WHERE ra').includes('rank'));
  assert.ok(!offered('SELECT * FROM app.todos WHERE EXISTS (SELECT tag AS rank FROM app.tags) ORDER BY ra').includes('rank'));
});

test("VALUES and column lists name a derived table's columns", () => {
  assert.deepEqual(offered('SELECT v.', " FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)"), ['v.id', 'v.name']);
  assert.deepEqual(offered('SELECT v.', " FROM (VALUES (1, 'a')) v(id, name)"), ['v.id', 'v.name']);
  // Without a list, the names the server gives.
  assert.deepEqual(offered('SELECT v.', " FROM (VALUES (1, 'a')) v"), ['v.column1', 'v.column2']);
  assert.deepEqual(offered('SELECT s.', ' FROM (SELECT title, done FROM app.todos) AS s(a, b)'), ['s.a', 's.b']);
  assert.deepEqual(columnNames('SELECT ', ' FROM (SELECT title, done FROM app.todos) s(name, one)'), ['name', 'one']);
  assert.deepEqual(offered('WITH c(a, b) AS (VALUES (1, 2)) SELECT c.', ' FROM c'), ['c.a', 'c.b']);
  assert.deepEqual(offered('WITH c AS (VALUES (1, 2)) SELECT c.', ' FROM c'), ['c.column1', 'c.column2']);
});

test('unfinished statements complete and never throw', () => {
  // The caret inside a CTE that is not closed yet.
  assert.deepEqual(offered('WITH o AS (SELECT title AS x FROM app.todos t WHERE t.ti'), ['t.title']);
  assert.deepEqual(offered('SELECT s.', ' FROM (SELECT title AS x FROM app.todos'), []);
  for (const text of [
    'WITH',
    'WITH x',
    'WITH x(',
    'WITH x(a',
    'WITH x(a, b) AS',
    'WITH x AS (',
    'WITH x AS (SELECT',
    'WITH x AS (SELECT a,',
    'WITH x AS (SELECT a AS',
    "WITH x AS (SELECT 'it''s",
    'WITH x AS (SELECT "a',
    'WITH x AS (SELECT /* a',
    'WITH x AS (SELECT * FROM',
    'WITH x AS (SELECT t.* FROM app.todos t) SELECT',
    'SELECT * FROM (',
    'SELECT * FROM (SELECT',
    'SELECT * FROM (SELECT a) AS',
    'SELECT * FROM ((SELECT a)) s)) x.',
    ')) ( SELECT ,, AS AS ( ) x.',
    'WITH RECURSIVE',
    'WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT',
    'SELECT 1 UNION',
    'UNION SELECT',
    'SELECT a UNION SELECT b ORDER BY x LIMIT',
    '(SELECT a) UNION (SELECT b) ORDER BY',
    ')) UNION (( EXCEPT ) INTERSECT',
    'SELECT * FROM (VALUES',
    'SELECT * FROM (VALUES (1,',
    'SELECT * FROM (VALUES ()) v(',
    'SELECT * FROM (SELECT 1) s(a,',
    'SELECT CASE WHEN a THEN 1 END',
    'SELECT a::',
  ]) {
    for (let caret = 0; caret <= text.length; caret++) {
      for (const explicit of [true, false]) complete(text, caret, catalog, 'app', explicit);
    }
  }
});
