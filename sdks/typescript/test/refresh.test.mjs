// Token renewal with short-lived access tokens: sql() and the sync connection keep working
// across several token lifetimes (refresh via /v1/api/auth/refresh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '../dist/node.js';
import { startServer, waitFor, within, sleep } from './server.mjs';

let server;
let client;

before(async () => {
  server = await startServer({ config: '[auth]\naccess_token_ttl_secs = 3\n' });
  await server.rootSql('CREATE NAMESPACE app; CREATE USER TABLE app.notes (id TEXT PRIMARY KEY, text TEXT)');
  await server.rootSql("CREATE USER 'rita' WITH PASSWORD 'rita-password' ROLE user");
});

after(async () => {
  await client?.close();
  await server?.stop();
});

test('tokens are refreshed before they expire, for HTTP and the sync connection', async () => {
  // Renew 1 s before expiry; tokens live 3 s.
  client = createClient({ url: server.url, auth: { username: 'rita', password: 'rita-password' }, refreshMarginSecs: 1 });
  const first = await client.token();
  await client.sync('notes', 'SELECT * FROM app.notes');
  await within(client.settled(), 10000, 'settled');
  const seen = new Set([first]);
  for (let i = 0; i < 4; i++) {
    await sleep(1500);
    seen.add(await client.token());
    await client.sql('INSERT INTO app.notes (id, text) VALUES ($1, $2)', [`h${i}`, `http ${i}`]);
    await client.table('app.notes').insert({ id: `s${i}`, text: `sync ${i}` });
  }
  assert.ok(seen.size >= 3, `tokens were renewed (${seen.size} distinct)`);
  await within(client.settled(), 15000, 'settled after renewals');
  const rows = await waitFor(async () => {
    const r = await client.query('SELECT id FROM app.notes ORDER BY id');
    return r.length === 8 ? r : null;
  }, { what: 'all 8 rows in the replica' });
  assert.deepEqual(rows.map((r) => r.id), ['h0', 'h1', 'h2', 'h3', 's0', 's1', 's2', 's3']);
  const status = await client.status();
  assert.equal(status.online, true);
  assert.equal(status.pendingWrites, 0);
});
