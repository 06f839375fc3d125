// The admin console in headless Chromium (playwright-core + /usr/bin/chromium) against the real
// kalamdb-server, which serves the console embedded in its binary at /admin. Screenshots go to
// $KALAMDB_ARTIFACTS/admin (default: target/admin-screenshots); `scripts/test-admin.sh
// --update-docs` copies them to docs/images/admin/.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createServer, connect } from 'node:net';
import { chromium } from 'playwright-core';
import { startServer, ROOT_PASSWORD, sleep, waitFor } from '../../sdks/typescript/test/server.mjs';
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from '../../scripts/chromium.mjs';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const shots = process.env.KALAMDB_ARTIFACTS
  ? join(process.env.KALAMDB_ARTIFACTS, 'admin')
  : join(repo, 'target', 'admin-screenshots');
const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

let server;
let browser;
let admin;
/** Every page opened by a test, with what went wrong in it. */
let opened = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  server = await startServer();
  admin = `${server.url}/admin/`;
  await server.rootSql(
    'CREATE NAMESPACE app; ' +
      'CREATE USER TABLE app.todos (id TEXT PRIMARY KEY DEFAULT ULID(), title TEXT NOT NULL, done BOOLEAN DEFAULT FALSE); ' +
      "INSERT INTO app.todos (title) VALUES ('milk'), ('eggs'); " +
      'ALTER TABLE app.todos ADD COLUMN prio INT; ' +
      "CREATE SHARED TABLE app.config (k TEXT PRIMARY KEY, v TEXT) WITH (access_level = 'public'); " +
      "INSERT INTO app.config (k, v) VALUES ('theme', 'dark'); " +
      "CREATE USER 'alice' WITH PASSWORD 'alice-password' ROLE user; " +
      "CREATE USER 'svc' WITH PASSWORD 'svc-password' ROLE service",
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

// No page may throw, log an error or trip the CSP, except what a test expects.
afterEach(async () => {
  const problems = [];
  for (const p of opened) {
    const csp = await p.page.evaluate(() => window.__csp ?? []).catch(() => []);
    for (const v of csp) problems.push(`CSP violation: ${v}`);
    for (const e of p.errors) if (!p.allow.some((re) => re.test(e))) problems.push(e);
    await p.context.close().catch(() => {});
  }
  opened = [];
  assert.deepEqual(problems, [], 'page errors');
});

/** A fresh browser context (its own sessionStorage) with one page; `allow`: expected errors. */
async function newPage({ allow = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const entry = { context, page, errors: [], allow };
  page.on('pageerror', (e) => entry.errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') entry.errors.push(`console error: ${m.text()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp ??= []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  opened.push(entry);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

async function signIn(page, user = 'root', password = ROOT_PASSWORD, at = admin) {
  await page.goto(at);
  await page.waitForSelector('[data-testid=sign-in]');
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

async function signInAsRoot(page) {
  await signIn(page);
  await page.waitForSelector('[data-testid=sql-page]');
}

async function go(page, name) {
  await page.click(`[data-testid=nav-${name}]`);
}

/** The texts of the grid cells under `selector`, row by row. */
function gridRows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
}

test('the console is served with a strict CSP, gzip and cache headers', async () => {
  for (const path of ['/admin', '/admin/']) {
    const r = await fetch(server.url + path, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(r.headers.get('content-security-policy'), CSP);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    const html = await r.text();
    // No inline script or style: every script is a file.
    assert.match(html, /<script type="module" crossorigin src="\/admin\/assets\/index-[\w-]+\.js"><\/script>/);
    assert.doesNotMatch(html, /<script>|<script type="module">|<style|style=/);
  }
  const html = await (await fetch(admin)).text();
  const js = /src="(\/admin\/assets\/[^"]+\.js)"/.exec(html)[1];
  // Node's fetch asks for gzip and decodes it; read the raw bytes with a plain request instead.
  const raw = await rawGet(js, { 'accept-encoding': 'gzip' });
  assert.equal(raw.headers['content-encoding'], 'gzip');
  assert.equal(raw.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(raw.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(raw.headers['content-security-policy'], CSP);
  const plain = await rawGet(js, {});
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.ok(gunzipSync(raw.body).equals(plain.body), 'the gzip twin holds the same file');
  assert.ok(raw.body.length < plain.body.length / 2, `gzip ${raw.body.length} B vs ${plain.body.length} B`);
  const again = await rawGet(js, { 'if-none-match': raw.headers.etag, 'accept-encoding': 'gzip' });
  assert.equal(again.status, 304);
});

/** A GET without fetch's transparent decoding: status, headers, body bytes. */
async function rawGet(path, headers) {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(server.url + path, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a wrong password shows an error and keeps nothing', async () => {
  const page = await newPage({ allow: [/status of 401/] });
  await signIn(page, 'root', 'not-the-password');
  await page.waitForSelector('[data-testid=sign-in-error]');
  assert.equal(await page.textContent('[data-testid=sign-in-error]'), 'Invalid user name or password.');
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
  await shot(page, 'sign-in-error');
});

test('a user-role account is refused, with the reason, and gets no token', async () => {
  for (const [user, role] of [
    ['alice', 'user'],
    ['svc', 'service'],
  ]) {
    const page = await newPage({ allow: [/status of 403/] });
    await signIn(page, user, `${user}-password`);
    await page.waitForSelector('[data-testid=sign-in-error]');
    assert.equal(
      await page.textContent('[data-testid=sign-in-error]'),
      `the admin console is open to roles dba, system; '${user}' has role ${role}`,
    );
    assert.deepEqual(await page.evaluate(() => ({ s: Object.keys(sessionStorage), l: Object.keys(localStorage) })), { s: [], l: [] });
    if (user === 'alice') await shot(page, 'sign-in-refused');
  }
  // The server refuses it, not only the page.
  const r = await fetch(`${server.url}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
  });
  assert.equal(r.status, 403);
  const body = await r.json();
  assert.equal(body.error.code, 'FORBIDDEN');
  assert.equal(body.access_token, undefined);
});

test('root signs in, runs a query and sees the grid, timing and history', async () => {
  // The failing statement's answer (404 TABLE_NOT_FOUND) is logged by Chromium.
  const page = await newPage({ allow: [/status of 404/] });
  await page.goto(admin);
  await page.waitForSelector('[data-testid=sign-in]');
  await shot(page, 'sign-in');
  await signInAsRoot(page);
  assert.match(await page.textContent('[data-testid=who]'), /root\s*system/);
  await page.fill('[data-testid=sql-editor]', "SELECT title, done, prio FROM app.todos ORDER BY title; SELECT 'x' AS y WHERE false");
  await page.click('[data-testid=run]');
  await page.waitForSelector('[data-testid=result]');
  const grids = await page.$$('[data-testid=result]');
  assert.equal(grids.length, 2);
  assert.deepEqual(await gridRows(page, '[data-testid=result]:first-of-type [data-testid=grid]'), [
    ['eggs', 'false', 'NULL'],
    ['milk', 'false', 'NULL'],
  ]);
  assert.match(await page.textContent('[data-testid=timing]'), /^Time: [\d.]+ m?s \(server [\d.]+ m?s\)$/);
  // Ctrl+Enter runs too; errors name the statement.
  await page.fill('[data-testid=sql-editor]', 'SELECT 1; SELECT * FROM app.nope');
  await page.press('[data-testid=sql-editor]', 'Control+Enter');
  await page.waitForSelector('[data-testid=error]');
  assert.match(await page.textContent('[data-testid=error]'), /^TABLE_NOT_FOUND: .*app\.nope.*\(statement 2\)$/);
  // History: newest first, this tab only; statements with a password are not kept.
  await page.fill('[data-testid=sql-editor]', "ALTER USER 'alice' SET PASSWORD 'alice-password'");
  await page.click('[data-testid=run]');
  await page.waitForSelector('[data-testid=result-message]');
  const history = await page.$$eval('[data-testid=history-item]', (els) => els.map((e) => e.textContent));
  assert.deepEqual(history, [
    'SELECT 1; SELECT * FROM app.nope',
    "SELECT title, done, prio FROM app.todos ORDER BY title; SELECT 'x' AS y WHERE false",
  ]);
  await page.click('[data-testid=history-item] >> nth=1');
  await page.click('[data-testid=run]');
  await page.waitForSelector('[data-testid=result]');
  // With text selected, only the selection runs, by Ctrl+Enter or by Run (which takes the focus).
  await page.fill('[data-testid=sql-editor]', "SELECT 'first' AS a; SELECT 'second' AS b");
  // Selects from `from` to the next `;` or the end.
  const select = (from) =>
    page.$eval(
      '[data-testid=sql-editor]',
      (ta, from) => {
        ta.focus();
        const start = ta.value.indexOf(from);
        const end = ta.value.indexOf(';', start);
        ta.setSelectionRange(start, end < 0 ? ta.value.length : end);
      },
      from,
    );
  await select("SELECT 'second'");
  await page.keyboard.press('Control+Enter');
  await page.waitForFunction(() => document.querySelector('[data-testid=result]')?.textContent.includes('second'));
  assert.equal((await page.$$('[data-testid=result]')).length, 1);
  assert.deepEqual(await gridRows(page, '[data-testid=result] [data-testid=grid]'), [['second']]);
  await select("SELECT 'first'");
  await page.click('[data-testid=run]');
  await page.waitForFunction(() => document.querySelector('[data-testid=result]')?.textContent.includes('first'));
  assert.equal((await page.$$('[data-testid=result]')).length, 1);
  assert.deepEqual(await gridRows(page, '[data-testid=result] [data-testid=grid]'), [['first']]);
  assert.equal((await page.$$eval('[data-testid=history-item]', (els) => els.map((e) => e.textContent)))[0], "SELECT 'first' AS a");
  // The token is in this tab's sessionStorage only: not in the URL, not in localStorage.
  const storage = await page.evaluate(() => ({ local: { ...localStorage }, session: Object.keys(sessionStorage).sort() }));
  assert.deepEqual(storage, { local: {}, session: ['kalamdb-admin.history', 'kalamdb-admin.session'] });
  assert.doesNotMatch(page.url(), /token|eyJ/);
});

test('a large result pages by 1,000 rows and downloads whole as CSV', async () => {
  const page = await newPage();
  await signInAsRoot(page);
  await page.fill('[data-testid=sql-editor]', `SELECT value, 'a,"b' AS t, NULL AS n FROM generate_series(1, 2500)`);
  await page.click('[data-testid=run]');
  await page.waitForSelector('[data-testid=pager]');
  assert.equal(await page.textContent('[data-testid=page-rows]'), 'Rows 1–1,000 of 2,500');
  assert.equal((await gridRows(page, '[data-testid=grid]')).length, 1000);
  await page.click('[data-testid=page-next]');
  await page.click('[data-testid=page-next]');
  assert.equal(await page.textContent('[data-testid=page-rows]'), 'Rows 2,001–2,500 of 2,500');
  const last = await gridRows(page, '[data-testid=grid]');
  assert.deepEqual([last.length, last[0][0], last[499][0]], [500, '2001', '2500']);
  assert.equal(await page.isDisabled('[data-testid=page-next]'), true);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-csv]')]);
  const lines = readFileSync(await download.path(), 'utf8').split('\r\n');
  assert.deepEqual(lines.slice(0, 2), ['value,t,n', '1,"a,""b",']);
  assert.deepEqual([lines.length, lines[2500], lines[2501]], [2502, '2500,"a,""b",', '']);
});

test('the schema browser shows namespaces, tables, columns, rows and schema history', async () => {
  const page = await newPage();
  await signInAsRoot(page);
  await go(page, 'schema');
  await page.waitForSelector('[data-testid=table-link][data-table="app.todos"]');
  const tables = await page.$$eval('[data-namespace=app] [data-testid=table-link]', (els) => els.map((e) => e.dataset.table));
  assert.deepEqual(tables, ['app.config', 'app.todos']);
  await page.click('[data-testid=table-link][data-table="app.todos"]');
  await page.waitForSelector('[data-testid=grid-columns]');
  const columns = (await gridRows(page, '[data-testid=grid-columns]')).map((r) => r.slice(0, 3));
  assert.deepEqual(columns.slice(0, 4), [
    ['id', '1', 'TEXT'],
    ['title', '2', 'TEXT'],
    ['done', '3', 'BOOLEAN'],
    ['prio', '4', 'INT'],
  ]);
  assert.match(page.url(), /#\/schema\/app\.todos$/);
  await page.click('[data-testid=tab-rows]');
  await page.waitForSelector('[data-testid=grid-rows]');
  const titles = (await gridRows(page, '[data-testid=grid-rows]')).map((r) => r[1]).sort();
  assert.deepEqual(titles, ['eggs', 'milk']);
  await shot(page, 'schema-rows');
  await page.click('[data-testid=tab-history]');
  await page.waitForSelector('[data-testid=grid-history]');
  const versions = await gridRows(page, '[data-testid=grid-history]');
  assert.deepEqual(
    versions.map((r) => [r[0], r[2]]),
    [
      ['1', 'CREATE TABLE'],
      ['2', 'ADD COLUMN prio INT'],
    ],
  );
  await page.click('[data-testid=tab-columns]');
  await page.waitForSelector('[data-testid=grid-columns]');
  await shot(page, 'schema');
  // A reload lands on the same table (the route is in the fragment).
  await page.reload();
  await page.waitForSelector('[data-testid=table-detail][data-table="app.todos"]');
});

test('the SQL editor highlights SQL and completes names from the catalog', async () => {
  const page = await newPage();
  // Completion (kalamdb-complete as WebAssembly) loads on the editor's first completion, not
  // with the console.
  const wasm = [];
  page.on('response', (r) => {
    if (r.url().endsWith('.wasm')) wasm.push([r.headers()['content-type'], r.headers()['content-encoding']]);
  });
  await signInAsRoot(page);
  const editor = page.locator('[data-testid=sql-editor]');
  /** The completion list: [kind, text, selected] per entry. */
  const offered = () =>
    page.$$eval('[data-testid=completion]', (els) =>
      els.map((e) => [e.dataset.kind, e.querySelector('.completion-text').textContent, e.getAttribute('aria-selected')]),
    );
  const tables = async () => Number(await page.getAttribute('.code-editor', 'data-tables'));
  await waitFor(async () => (await tables()) > 0, { what: 'the catalog' });

  assert.deepEqual(wasm, [], 'no completion module before the first completion');
  // Typing a name opens the list (from the second character); Tab takes the entry.
  await editor.fill('');
  await editor.pressSequentially('SELECT * FROM app.to');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual(await offered(), [['table', 'app.todos', 'true']]);
  assert.deepEqual(wasm, [['application/wasm', 'gzip']], 'the module, once, as WebAssembly, gzipped');
  await page.keyboard.press('Tab');
  assert.equal(await editor.inputValue(), 'SELECT * FROM app.todos');
  assert.equal(await page.$('[data-testid=completions]'), null);
  // The columns of the table the statement names come first. Esc closes the list, Ctrl+Space
  // opens it again, the arrows move in it, Enter takes the entry.
  await page.keyboard.type(' ORDER BY ti');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual((await offered())[0], ['column', 'title', 'true']);
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=completions]', { state: 'detached' });
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('[data-testid=completions]');
  await page.keyboard.press('ArrowDown');
  assert.deepEqual((await offered()).map((o) => o[2]).slice(0, 2), ['false', 'true']);
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Enter');
  assert.equal(await editor.inputValue(), 'SELECT * FROM app.todos ORDER BY title');
  assert.equal(await page.$('[data-testid=completions]'), null);
  // The text under the textarea is the same text, coloured token by token.
  const spans = () => page.$$eval('[data-testid=sql-highlight] span', (els) => els.map((e) => [e.className, e.textContent]));
  assert.deepEqual(await spans(), [
    ['tok-keyword', 'SELECT'],
    ['tok-operator', '*'],
    ['tok-keyword', 'FROM'],
    ['tok-identifier', 'app'],
    ['tok-operator', '.'],
    ['tok-identifier', 'todos'],
    ['tok-keyword', 'ORDER'],
    ['tok-keyword', 'BY'],
    ['tok-identifier', 'title'],
  ]);
  assert.equal(await page.textContent('[data-testid=sql-highlight]'), 'SELECT * FROM app.todos ORDER BY title\n');
  assert.equal(await editor.evaluate((e) => getComputedStyle(e).color), 'rgba(0, 0, 0, 0)', 'only the coloured copy shows');
  const colour = (cls) => page.$eval(`[data-testid=sql-highlight] .${cls}`, (e) => getComputedStyle(e).color);
  assert.notEqual(await colour('tok-keyword'), await colour('tok-identifier'));
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('[data-testid=result]');
  assert.deepEqual((await gridRows(page, '[data-testid=grid]')).map((r) => r[1]), ['eggs', 'milk']);

  // Comments, strings, numbers and functions; Ctrl+Space on no word in ORDER BY offers the
  // select list's names first, then the rest of the table's columns.
  await editor.fill("-- open items\nSELECT title, prio\nFROM app.todos\nWHERE title <> 'it''s' AND coalesce(prio, 0) < 3\nORDER BY ");
  const kinds = Object.fromEntries((await spans()).map(([cls, text]) => [text, cls]));
  assert.equal(kinds['-- open items'], 'tok-comment');
  assert.equal(kinds["'it''s'"], 'tok-string');
  assert.equal(kinds['3'], 'tok-number');
  assert.equal(kinds.coalesce, 'tok-function');
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual(
    (await offered()).slice(0, 6).map((o) => o[1]),
    ['title', 'prio', 'id', 'done', '_updated', '_deleted'],
  );
  await shot(page, 'sql');
  await page.keyboard.press('Escape');
  // Enter with no list open is a new line; nothing is offered inside a string.
  await page.keyboard.press('Enter');
  await page.keyboard.type("'ti");
  assert.equal(await page.$('[data-testid=completions]'), null);
  assert.match(await editor.inputValue(), /ORDER BY \n'ti$/);
  // Line numbers, beside the text (not under it), scrolled with it.
  const gutter = page.locator('[data-testid=sql-gutter]');
  assert.equal(await gutter.textContent(), '1\n2\n3\n4\n5\n6');
  const textLeft = await editor.evaluate((e) => e.getBoundingClientRect().left + parseFloat(getComputedStyle(e).paddingLeft));
  const gutterRight = await gutter.evaluate((e) => e.getBoundingClientRect().right);
  assert.ok(textLeft > gutterRight, `text at ${textLeft}, numbers end at ${gutterRight}`);
  await editor.fill(Array.from({ length: 120 }, (_, i) => `SELECT ${i};`).join('\n'));
  assert.equal((await gutter.textContent()).split('\n').at(-1), '120');
  await editor.evaluate((e) => {
    e.scrollTop = e.scrollHeight;
    e.dispatchEvent(new Event('scroll'));
  });
  const [taTop, gutterTop] = await editor.evaluate((e) => [e.scrollTop, document.querySelector('[data-testid=sql-gutter]').scrollTop]);
  assert.ok(taTop > 0 && gutterTop === taTop, `textarea ${taTop}, gutter ${gutterTop}`);

  // The bracket at the caret and its partner are marked (offsets in the text); a bracket in a
  // string is no bracket.
  const marked = () =>
    page.$eval('[data-testid=sql-highlight]', (pre) => {
      const at = [];
      let offset = 0;
      for (const n of pre.childNodes) {
        if (n.dataset?.testid === 'bracket-match') at.push(offset);
        offset += n.textContent.length;
      }
      return at;
    });
  const caretAt = async (pos) => {
    await editor.evaluate((e, pos) => {
      e.focus();
      e.setSelectionRange(pos + 1, pos + 1);
    }, pos);
    await page.keyboard.press('ArrowLeft');
  };
  const nested = "SELECT count(*) FROM (SELECT ')' AS p) t";
  await editor.fill(nested);
  const count = nested.indexOf('(*');
  await caretAt(count + 3);
  assert.deepEqual(await marked(), [count, count + 2]);
  const sub = nested.indexOf('(SELECT');
  await caretAt(sub + 1);
  assert.deepEqual(await marked(), [sub, nested.lastIndexOf(')')]);
  await caretAt(sub);
  assert.deepEqual(await marked(), [sub, nested.lastIndexOf(')')]);
  await caretAt(3);
  assert.deepEqual(await marked(), []);

  // DDL run from the editor reads the catalog again: the new table and its columns complete.
  const before = await tables();
  await editor.fill('CREATE NAMESPACE lab; CREATE SHARED TABLE lab.notes (id INT PRIMARY KEY, body TEXT)');
  await page.click('[data-testid=run]');
  await page.waitForSelector('[data-testid=result-message]');
  await waitFor(async () => (await tables()) === before + 1, { what: 'the catalog read again' });
  await editor.fill('');
  await editor.pressSequentially('SELECT * FROM lab.no');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual(await offered(), [['table', 'lab.notes', 'true']]);
  await page.keyboard.press('Enter');
  await page.keyboard.type(' WHERE bo');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual((await offered())[0], ['column', 'body', 'true']);
  await page.keyboard.press('Tab');
  await page.keyboard.type(' IS NULL');
  assert.equal(await editor.inputValue(), 'SELECT * FROM lab.notes WHERE body IS NULL');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('[data-testid=result]:has-text("(0 rows)")');

  // Tables made elsewhere complete without a reload: the tab shown again reads the catalog...
  await server.rootSql('CREATE SHARED TABLE lab.tags (id INT PRIMARY KEY, label TEXT)');
  const shown = await tables();
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await waitFor(async () => (await tables()) === shown + 1, { what: 'the catalog read when the tab is shown' });
  await editor.fill('');
  await editor.pressSequentially('SELECT * FROM lab.ta');
  await page.waitForSelector('[data-testid=completions]');
  assert.deepEqual(await offered(), [['table', 'lab.tags', 'true']]);
  // ...and so does the editor's focus once the catalog is over 5 s old (not before).
  await server.rootSql('CREATE SHARED TABLE lab.links (id INT PRIMARY KEY, url TEXT)');
  await page.keyboard.press('Escape');
  await editor.blur();
  await editor.focus();
  await sleep(300);
  assert.equal(await tables(), shown + 1, 'a fresh catalog is not read again on focus');
  await sleep(5_000);
  await editor.blur();
  await editor.focus();
  await waitFor(async () => (await tables()) === shown + 2, { what: 'the catalog read on focus' });
  // ...and typing, while the editor keeps the focus, once it is over 5 s old.
  await server.rootSql('CREATE SHARED TABLE lab.pins (id INT PRIMARY KEY)');
  await sleep(5_200);
  await page.keyboard.type(' ');
  await waitFor(async () => (await tables()) === shown + 3, { what: 'the catalog read while typing' });
});

test('the live view shows the rows, then each change as it commits', async () => {
  const page = await newPage();
  await signInAsRoot(page);
  await go(page, 'schema');
  await page.click('[data-testid=table-link][data-table="app.todos"]');
  await page.click('[data-testid=watch-live]');
  await page.waitForSelector('[data-testid=live-page]');
  assert.equal(await page.inputValue('[data-testid=live-sql]'), 'SELECT * FROM app.todos');
  await page.fill('[data-testid=live-sql]', 'SELECT id, title, done FROM app.todos');
  await page.click('[data-testid=live-start]');
  await page.waitForSelector('[data-testid=live-status][data-status=live]');
  assert.equal((await gridRows(page, '[data-testid=live-rows]')).length, 2);
  // Changes through the HTTP API (root's partition, which root's live query watches).
  await server.rootSql("INSERT INTO app.todos (title) VALUES ('bread')");
  await page.waitForSelector('[data-testid=live-change][data-op=insert]');
  assert.match(await page.textContent('[data-testid=live-change][data-op=insert]'), /title='bread'/);
  await server.rootSql("UPDATE app.todos SET done = true WHERE title = 'milk'");
  await page.waitForSelector('[data-testid=live-change][data-op=update]');
  assert.match(await page.textContent('[data-testid=live-change][data-op=update]'), /done false → true/);
  await server.rootSql("DELETE FROM app.todos WHERE title = 'bread'");
  await page.waitForSelector('[data-testid=live-change][data-op=delete]');
  const rows = (await gridRows(page, '[data-testid=live-rows]')).map((r) => `${r[1]}:${r[2]}`).sort();
  assert.deepEqual(rows, ['eggs:false', 'milk:true']);
  await shot(page, 'live');
  await page.click('[data-testid=live-stop]');
  await page.waitForSelector('[data-testid=live-status][data-status=ended]');
});

/**
 * A TCP relay in front of the server whose connections the test can cut, and which can
 * refuse new ones for a while: a network drop between the browser and the server.
 */
async function relay(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  const state = { down: false };
  const listener = createServer((client) => {
    if (state.down) return client.destroy();
    const upstream = connect(Number(port), hostname);
    const gone = () => {
      for (const s of [client, upstream]) {
        s.destroy();
        open.delete(s);
      }
    };
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', gone);
      s.on('close', gone);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${listener.address().port}`,
    drop() {
      state.down = true;
      for (const s of open) s.destroy();
    },
    restore() {
      state.down = false;
    },
    close: () => new Promise((resolve) => listener.close(resolve)),
  };
}

test('the live view reconnects after a dropped connection and catches up', async () => {
  const net = await relay(server.url);
  // Chromium logs each failed WebSocket attempt while the relay is down.
  const page = await newPage({ allow: [/WebSocket/, /ERR_CONNECTION/] });
  try {
    await signIn(page, 'root', ROOT_PASSWORD, `${net.url}/admin/`);
    await page.waitForSelector('[data-testid=sql-page]');
    await go(page, 'live');
    await page.fill('[data-testid=live-sql]', 'SELECT id, title FROM app.config_live');
    await server.rootSql(
      "CREATE SHARED TABLE app.config_live (id BIGINT PRIMARY KEY, title TEXT) WITH (access_level = 'public'); " +
        "INSERT INTO app.config_live (id, title) VALUES (1, 'before')",
    );
    await page.click('[data-testid=live-start]');
    await page.waitForSelector('[data-testid=live-status][data-status=live]');
    net.drop();
    await page.waitForSelector('[data-testid=live-status][data-status=reconnecting]');
    assert.match(await page.textContent('[data-testid=live-status]'), /reconnecting \(attempt \d+/);
    // Written while the console cannot hear of it.
    await server.rootSql("INSERT INTO app.config_live (id, title) VALUES (2, 'while away'); UPDATE app.config_live SET title = 'changed' WHERE id = 1");
    net.restore();
    await waitFor(async () => (await gridRows(page, '[data-testid=live-rows]')).length === 2, {
      what: 'the rows written while disconnected',
      timeoutMs: 20000,
    });
    await page.waitForSelector('[data-testid=live-status][data-status=live]');
    const rows = (await gridRows(page, '[data-testid=live-rows]')).map((r) => `${r[0]}:${r[1]}`).sort();
    assert.deepEqual(rows, ['1:changed', '2:while away']);
    // And it goes on live after the reconnection.
    await server.rootSql("INSERT INTO app.config_live (id, title) VALUES (3, 'after')");
    await page.waitForSelector('[data-testid=live-change][data-op=insert]');
    await page.click('[data-testid=live-stop]');
  } finally {
    net.drop();
    await net.close();
  }
});

test('a live query is listed in system.live_queries and killed from the console', async () => {
  // Alice's client: a subscription over the WebSocket from a page of its own.
  // (Chromium asks this page's origin for /favicon.ico: 404, no such endpoint.)
  const client = await newPage({ allow: [/status of 404/] });
  await client.goto(`${server.url}/health`);
  const liveId = await client.evaluate(async () => {
    const login = await fetch('/v1/api/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
    });
    const { access_token: token } = await login.json();
    const ws = new WebSocket(`ws://${location.host}/v1/ws`);
    window.frames_ = [];
    return new Promise((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        window.frames_.push(f);
        if (f.type === 'auth_ok') ws.send(JSON.stringify({ type: 'subscribe', id: 'mine', sql: 'SELECT * FROM app.todos' }));
        if (f.type === 'subscribed') resolve(f.live_id);
        if (f.type === 'error') reject(new Error(f.message));
      };
    });
  });

  const page = await newPage();
  await signInAsRoot(page);
  await go(page, 'live-queries');
  const row = `[data-testid=live-query][data-live-id="${liveId}"]`;
  await page.waitForSelector(row);
  assert.match(await page.textContent(row), /alice/);
  assert.match(await page.textContent(row), /app\.todos/);
  await shot(page, 'live-queries');
  await page.click(`${row} [data-testid=kill]`);
  await page.click(`${row} [data-testid=confirm-yes]`);
  await page.waitForSelector(row, { state: 'detached' });
  assert.match(await page.textContent('[data-testid=notice]'), /./);
  // Alice's subscription ended with KILLED.
  await waitFor(
    async () => (await client.evaluate(() => window.frames_)).some((f) => f.type === 'error' && f.code === 'KILLED'),
    { what: 'KILLED frame' },
  );
  const rows = await server.rootSql('SELECT live_id FROM system.live_queries');
  assert.ok(!rows[0].rows.some((r) => r[0] === liveId));
});

test('users: create, change role, set password, drop', async () => {
  const page = await newPage({ allow: [/status of 401/] });
  await signInAsRoot(page);
  await go(page, 'users');
  await page.waitForSelector('[data-testid=user][data-username=root]');
  await page.fill('[data-testid=create-user] input[name=username]', 'bob');
  await page.fill('[data-testid=create-user] input[name=password]', 'bob-password-1');
  await page.selectOption('[data-testid=create-user] select[name=role]', 'user');
  await page.fill('[data-testid=create-user] input[name=email]', 'bob@example.com');
  await page.click('[data-testid=create-user] button[type=submit]');
  const bob = '[data-testid=user][data-username=bob]';
  await page.waitForSelector(`${bob}[data-role=user]`);
  assert.match(await page.textContent('[data-testid=notice]'), /bob/);
  // The password went in the request only: not into the history.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kalamdb-admin.history')), null);

  await page.selectOption(`${bob} [data-testid=role]`, 'dba');
  await page.click(`${bob} [data-testid=set-role]`);
  await page.waitForSelector(`${bob}[data-role=dba]`);
  await page.fill(`${bob} input[type=password]`, 'bob-password-2');
  await page.click(`${bob} [data-testid=set-password]`);
  await waitFor(async () => (await page.inputValue(`${bob} input[type=password]`)) === '', { what: 'password field cleared' });
  await shot(page, 'users');
  const [res] = await server.rootSql("SELECT role, email FROM system.users WHERE username = 'bob'");
  assert.deepEqual(res.rows, [['dba', 'bob@example.com']]);

  // Bob, now dba, may use the console with the new password.
  const bobPage = await newPage();
  await signIn(bobPage, 'bob', 'bob-password-2');
  await bobPage.waitForSelector('[data-testid=sql-page]');
  // Demoted, his console session is refused at the next reload.
  await server.rootSql("ALTER USER 'bob' SET ROLE user");
  await bobPage.reload();
  await bobPage.waitForSelector('[data-testid=sign-in]');
  assert.equal(await bobPage.textContent('[data-testid=notice]'), "the admin console is open to roles dba, system; 'bob' has role user");
  opened.at(-1).allow.push(/status of 403/);

  await page.click(`${bob} [data-testid=drop-user]`);
  await page.click(`${bob} [data-testid=confirm-yes]`);
  await page.waitForSelector(bob, { state: 'detached' });
  // Errors from the server are shown: root cannot be dropped.
  await page.click('[data-testid=user][data-username=root] [data-testid=drop-user]');
  await page.click('[data-testid=user][data-username=root] [data-testid=confirm-yes]');
  await page.waitForSelector('[data-testid=error]');
  assert.match(await page.textContent('[data-testid=error]'), /root/);
  opened[0].allow.push(/status of 40\d/);
});

test('jobs: a flush started from the schema page is followed to completion', async () => {
  await server.rootSql("INSERT INTO app.todos (title) VALUES ('a'), ('b'), ('c')");
  const page = await newPage();
  await signInAsRoot(page);
  await go(page, 'schema');
  await page.click('[data-testid=table-link][data-table="app.todos"]');
  await page.click('[data-testid=flush]');
  await page.waitForSelector('[data-testid=jobs-page]');
  await page.waitForSelector('[data-testid=job][data-status=completed]');
  const row = await page.textContent('[data-testid=job][data-status=completed]');
  assert.match(row, /flush/);
  assert.match(row, /app\.todos/);
  assert.match(row, /[1-9]\d* rows, 1 file,/);
  await shot(page, 'jobs');
});

test('storages: list, create and drop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kalamdb-admin-storage-'));
  try {
    const page = await newPage();
    await signInAsRoot(page);
    await go(page, 'storages');
    await page.waitForSelector('[data-testid=storage][data-storage=local]');
    await page.fill('[data-testid=create-storage] input[name=id]', 'archive');
    await page.fill('[data-testid=create-storage] input[name=path]', dir);
    await page.click('[data-testid=create-storage] button[type=submit]');
    await page.waitForSelector('[data-testid=storage][data-storage=archive]');
    assert.match(await page.textContent('[data-testid=storage][data-storage=archive]'), /filesystem/);
    await shot(page, 'storages');
    await page.click('[data-testid=storage][data-storage=archive] [data-testid=drop-storage]');
    await page.click('[data-testid=storage][data-storage=archive] [data-testid=confirm-yes]');
    await page.waitForSelector('[data-testid=storage][data-storage=archive]', { state: 'detached' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('health and metrics', async () => {
  const page = await newPage();
  await signInAsRoot(page);
  await go(page, 'health');
  await page.waitForSelector('[data-testid=health-status] .ok');
  assert.match(await page.textContent('[data-testid=health-status]'), /ok.*version \d+\.\d+\.\d+/s);
  const [users] = await server.rootSql('SELECT count(*) FROM system.users');
  await page.waitForSelector('[data-testid=count-users] .big');
  assert.equal(await page.textContent('[data-testid=count-users] .big'), String(users.rows[0][0]));
  const metrics = await gridRows(page, '[data-testid=metrics]');
  assert.ok(Number(metrics.find((r) => r[0] === 'SQL requests')[1].replace(/,/g, '')) > 0, JSON.stringify(metrics));
  await shot(page, 'health');
});

test('a reload keeps the session in its tab only; sign out clears it', async () => {
  const page = await newPage();
  await signInAsRoot(page);
  await page.reload();
  await page.waitForSelector('[data-testid=sql-page]');
  // Another tab (a new context has its own sessionStorage) is not signed in.
  const other = await newPage();
  await other.goto(admin);
  await other.waitForSelector('[data-testid=sign-in]');
  await page.click('[data-testid=sign-out]');
  await page.waitForSelector('[data-testid=sign-in]');
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
  await page.reload();
  await page.waitForSelector('[data-testid=sign-in]');
});

test('the access token is renewed before it expires, also for an open live view', async () => {
  // Tokens of 8 s are renewed after 5 s (a minute before expiry, but at least 5 s from now);
  // the server checks a socket's token every heartbeat (1 s here).
  const short = await startServer({ config: '[auth]\naccess_token_ttl_secs = 8\n[live]\nheartbeat_secs = 1\n' });
  try {
    const page = await newPage();
    await page.goto(`${short.url}/admin/`);
    await page.fill('input[name=username]', 'root');
    await page.fill('input[name=password]', ROOT_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=sql-page]');
    const token = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('kalamdb-admin.session')).token);
    const first = await token();
    await short.rootSql('CREATE NAMESPACE n; CREATE SHARED TABLE n.t (id INT PRIMARY KEY, v TEXT)');
    await go(page, 'live');
    await page.fill('[data-testid=live-sql]', 'SELECT * FROM n.t');
    await page.click('[data-testid=live-start]');
    await page.waitForSelector('[data-testid=live-status][data-status=live]');
    const expires = Date.parse(await page.evaluate(() => JSON.parse(sessionStorage.getItem('kalamdb-admin.session')).expiresAt));
    await waitFor(async () => (await token()) !== first, { timeoutMs: 15000, intervalMs: 250, what: 'a renewed token' });
    // Past the first token's expiry the server would have closed a socket that did not sign in
    // again with the new token; this one still receives changes.
    await sleep(Math.max(0, expires - Date.now()) + 2500);
    await short.rootSql("INSERT INTO n.t (id, v) VALUES (1, 'after renewal')");
    await page.waitForSelector('[data-testid=live-change][data-op=insert]');
    assert.equal(await page.getAttribute('[data-testid=live-status]', 'data-status'), 'live');
    await go(page, 'sql');
    await page.fill('[data-testid=sql-editor]', 'SELECT v FROM n.t');
    await page.click('[data-testid=run]');
    await page.waitForSelector('[data-testid=result]');
    assert.deepEqual(await gridRows(page, '[data-testid=grid]'), [['after renewal']]);
    // Closed before its server stops: an open live view would otherwise try to reconnect to
    // a closed port, an error of the test's making (afterEach still sees what came before).
    await page.context().close();
  } finally {
    await short.stop();
  }
});

test('with [admin] enabled = false there is no console', async () => {
  const off = await startServer({ config: '[admin]\nenabled = false\n' });
  try {
    const r = await fetch(`${off.url}/admin/`);
    assert.notEqual(r.status, 200);
    assert.equal(r.headers.get('content-security-policy'), null);
    const login = await fetch(`${off.url}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password: ROOT_PASSWORD }),
    });
    assert.notEqual(login.status, 200);
  } finally {
    await off.stop();
  }
});
