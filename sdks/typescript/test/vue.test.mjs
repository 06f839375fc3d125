// The Vue composables in Node (no DOM needed: they run inside an effect scope).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { effectScope, nextTick, ref } from 'vue';
import { createClient } from '../dist/node.js';
import { useLiveQuery, useSyncStatus } from '../dist/vue.js';
import { startServer, waitFor, within } from './server.mjs';

let server;
let client;

before(async () => {
  server = await startServer();
  await server.rootSql('CREATE NAMESPACE app; CREATE USER TABLE app.items (id TEXT PRIMARY KEY, name TEXT, qty INT)');
  await server.rootSql("CREATE USER 'vera' WITH PASSWORD 'vera-password' ROLE user");
  client = createClient({ url: server.url, auth: { username: 'vera', password: 'vera-password' } });
  await client.sync('items', 'SELECT * FROM app.items');
  await within(client.settled(), 10000, 'settled');
});

after(async () => {
  await client?.close();
  await server?.stop();
});

test('useLiveQuery refs follow writes and re-run when a param ref changes', async () => {
  const scope = effectScope();
  const min = ref(1);
  const { rows, loading, error, status } = scope.run(() => ({
    ...useLiveQuery('SELECT name FROM app.items WHERE qty >= $1 ORDER BY name', () => [min.value], { client }),
    status: useSyncStatus({ client }),
  }));
  await waitFor(() => !loading.value, { what: 'first result' });
  assert.deepEqual(rows.value, []);
  assert.equal(error.value, null);

  await client.table('app.items').insert({ id: 'a', name: 'apples', qty: 3 });
  await server.sqlAs('vera', "INSERT INTO app.items (id, name, qty) VALUES ('b', 'bananas', 1)");
  await waitFor(() => rows.value.length === 2, { what: 'local + server rows' });
  assert.deepEqual(rows.value.map((r) => r.name), ['apples', 'bananas']);

  min.value = 2;
  await nextTick();
  await waitFor(() => rows.value.length === 1, { what: 'param change re-runs the query' });
  assert.deepEqual(rows.value, [{ name: 'apples' }]);

  await within(client.settled(), 10000, 'settled');
  await waitFor(() => status.value.online && status.value.pendingWrites === 0, { what: 'status ref' });

  scope.stop();
  const before = rows.value;
  await client.table('app.items').insert({ id: 'c', name: 'cherries', qty: 9 });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(rows.value, before, 'no updates after the scope stopped');
});

test('useLiveQuery reports bad SQL through the error ref', async () => {
  const scope = effectScope();
  const { rows, loading, error } = scope.run(() => useLiveQuery('SELECT nope FROM app.missing', [], { client }));
  await waitFor(() => !loading.value, { what: 'error result' });
  assert.ok(error.value, 'error set');
  assert.equal(error.value.name, 'KalamError');
  assert.deepEqual(rows.value, []);
  scope.stop();
});
