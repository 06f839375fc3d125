// A replica synced into IndexedDB answers local queries after the browser restarts with the
// server gone: @kalamdb/client (browser build) in headless Chromium (playwright-core) on a
// persistent profile, against the real server. Bounded (3,000 rows); the large-replica figures
// come from scripts/measure-idb-startup.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../../../sdks/typescript/test/server.mjs';
import { CHROMIUM } from '../../../scripts/chromium.mjs';
import { SDK_PAGE_ARGS, SDK_PAGE_PATH, serveSdk } from '../../../scripts/sdk-page.mjs';

const ROWS = 3000;
const AUTH = { username: 'alice', password: 'alice-password' };

let server;
let profile;

before(async () => {
  server = await startServer();
  await server.rootSql(
    'CREATE NAMESPACE app; CREATE USER TABLE app.todos (id TEXT PRIMARY KEY, title TEXT, done BOOLEAN, n BIGINT); ' +
      "CREATE USER 'alice' WITH PASSWORD 'alice-password' ROLE user",
  );
  for (let start = 0; start < ROWS; start += 1000) {
    const values = [];
    for (let i = start; i < start + 1000; i++) values.push(`('t${String(i).padStart(5, '0')}', 'todo ${i}', ${i % 4 === 0}, ${i})`);
    await server.rootSql(`EXECUTE AS USER 'alice' (INSERT INTO app.todos (id, title, done, n) VALUES ${values.join(',')})`);
  }
  profile = mkdtempSync(join(tmpdir(), 'kalamdb-reopen-profile-'));
});

after(async () => {
  await server?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Chromium on the test's profile (what a restarted browser finds on disk), at the SDK page. */
async function launch(origin) {
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: SDK_PAGE_ARGS, headless: true });
  await serveSdk(context, origin);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error('[page error]', e.message));
  await page.goto(`${origin}${SDK_PAGE_PATH}/`);
  return { context, page };
}

test('a reopened client answers local queries from its IndexedDB replica, offline', async () => {
  const origin = server.url;
  const first = await launch(origin);
  const synced = await first.page.evaluate(
    async ({ url, auth, path }) => {
      const { createClient } = await import(`${path}/dist/browser.js`);
      const client = createClient({ url, auth });
      await client.sync('todos', 'SELECT * FROM app.todos');
      await client.settled();
      const [{ n }] = await client.query('SELECT count(*) AS n FROM app.todos');
      const storage = client.storage;
      await client.close();
      return { n: Number(n), storage };
    },
    { url: origin, auth: AUTH, path: SDK_PAGE_PATH },
  );
  await first.context.close();
  assert.deepEqual(synced, { n: ROWS, storage: 'indexeddb' });

  // The server is gone: whatever the client shows now comes from IndexedDB.
  await server.stop();
  const second = await launch(origin);
  try {
    const reopened = await second.page.evaluate(
      async ({ url, auth, path }) => {
        const { createClient } = await import(`${path}/dist/browser.js`);
        // As an app starts: online by default; connecting fails, local queries must not.
        const client = createClient({ url, auth });
        const errors = [];
        client.on('error', (e) => errors.push(e.code));
        await client.ready;
        const [{ n }] = await client.query('SELECT count(*) AS n FROM app.todos');
        const done = await client.query('SELECT id, n FROM app.todos WHERE done = true ORDER BY n DESC LIMIT 3');
        const live = await new Promise((resolve, reject) => {
          const stop = client.live(
            'SELECT count(*) AS open FROM app.todos WHERE done = false',
            undefined,
            (rows) => {
              stop();
              resolve(rows);
            },
            reject,
          );
        });
        const status = await client.status();
        await client.close();
        return { n: Number(n), done, live: Number(live[0].open), online: status.online, storage: client.storage, errors };
      },
      { url: origin, auth: AUTH, path: SDK_PAGE_PATH },
    );
    assert.equal(reopened.storage, 'indexeddb');
    assert.equal(reopened.online, false);
    assert.equal(reopened.n, ROWS);
    assert.deepEqual(
      reopened.done.map((r) => [r.id, Number(r.n)]),
      [
        ['t02996', 2996],
        ['t02992', 2992],
        ['t02988', 2988],
      ],
    );
    assert.equal(reopened.live, ROWS - ROWS / 4);
  } finally {
    await second.context.close();
  }
});
