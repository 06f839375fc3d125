// @kalamdb/client in a page of another origin (headless Chromium, playwright-core) against the
// real server started without --cors-origins: the browser blocks every request and says only
// "Failed to fetch". The client must say what to check, fire an 'error' event and reject
// settled() — not leave it waiting for ever.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { extname, join, normalize } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../../../sdks/typescript/test/server.mjs';

const sdkDir = fileURLToPath(new URL('../../../sdks/typescript/', import.meta.url));
// Another origin than the server's (a port nothing listens on; the page is served by page.route),
// on the loopback interface like the server, so that only CORS stands between them.
const ORIGIN = 'http://127.0.0.1:9';
const CONTENT_TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };
// A page served by page.route has no address space of its own; without this Chromium asks for
// the Local Network Access permission before it lets the page reach the loopback server at all.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-features=LocalNetworkAccessChecks',
];

const servers = [];
let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: ARGS });
});

after(async () => {
  await browser?.close().catch(() => {});
  for (const s of servers) await s.stop();
});

/** A server with user alice and table app.todos; `config` is extra TOML. */
async function server(config) {
  const s = await startServer({ config });
  servers.push(s);
  await s.rootSql(
    "CREATE NAMESPACE app; CREATE USER TABLE app.todos (id TEXT PRIMARY KEY, title TEXT); CREATE USER 'alice' WITH PASSWORD 'alice-password' ROLE user",
  );
  return s;
}

/** A page at ORIGIN that serves the SDK's browser build (dist/ and wasm/web/). */
async function pageAtOrigin() {
  const page = await browser.newPage();
  page.on('console', (m) => process.env.DEBUG_CONSOLE && console.log('[page]', m.text()));
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = normalize(decodeURIComponent(new URL(route.request().url()).pathname));
    if (path === '/') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>app</title>' });
    if (!path.startsWith('/dist/') && !path.startsWith('/wasm/web/')) return route.fulfill({ status: 404, body: '' });
    try {
      const body = readFileSync(join(sdkDir, path));
      return route.fulfill({ contentType: CONTENT_TYPES[extname(path)] ?? 'application/octet-stream', body });
    } catch {
      return route.fulfill({ status: 404, body: '' });
    }
  });
  await page.goto(`${ORIGIN}/`);
  return page;
}

/** Opens a client in the page, syncs a table and waits for settled(); what happened. */
function trySync(page, url) {
  return page.evaluate(async (url) => {
    const { createClient } = await import('/dist/browser.js');
    const client = createClient({ url, auth: { username: 'alice', password: 'alice-password' }, storage: 'memory' });
    const events = [];
    client.on('error', (e) => events.push({ code: e.code, message: e.message }));
    await client.ready;
    await client.sync('todos', 'SELECT * FROM app.todos');
    let settled;
    try {
      await client.settled();
      settled = { ok: true };
    } catch (e) {
      settled = { code: e.code, message: e.message };
    }
    const deadline = Date.now() + 5000;
    while (settled.code && !events.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await client.close();
    return { settled, events };
  }, url);
}

test('a page on another origin is told to check --cors-origins: error event and settled() rejects', async () => {
  const s = await server();
  const page = await pageAtOrigin();
  const out = await trySync(page, s.url);
  assert.equal(out.settled.code, 'NETWORK_ERROR', JSON.stringify(out));
  assert.ok(out.settled.message.includes(`cannot reach ${s.url}/`), out.settled.message);
  assert.ok(out.settled.message.includes(`allows this page's origin (${ORIGIN}) with --cors-origins`), out.settled.message);
  assert.doesNotMatch(out.settled.message, /\n\s+at /, 'no stack trace');
  assert.equal(out.events[0]?.code, 'NETWORK_ERROR', JSON.stringify(out.events));
  await page.close();
});

test('the same page syncs once the server allows its origin', async () => {
  const s = await server(`[server]\ncors_origins = ["${ORIGIN}"]\n`);
  const page = await pageAtOrigin();
  const out = await trySync(page, s.url);
  assert.deepEqual(out.settled, { ok: true }, JSON.stringify(out));
  await page.close();
});
