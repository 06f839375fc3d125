// Local queries in KalamDB's query language against the real server (Node: memory replica):
// a join + aggregate over two synced tables returns what the server returns for the same SQL,
// follows local and remote writes live, and keeps DECIMAL and large BIGINT values exact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, KalamError } from '../dist/node.js';
import { startServer, waitFor, within } from './server.mjs';

let server;
const clients = [];

function client(username) {
  const c = createClient({ url: server.url, auth: { username, password: `${username}-password` } });
  clients.push(c);
  return c;
}

let userSeq = 0;
async function newUser(prefix) {
  const name = `${prefix}${++userSeq}_${Date.now() % 100000}`;
  await server.rootSql(`CREATE USER '${name}' WITH PASSWORD '${name}-password' ROLE user`);
  return name;
}

/** Lists with their open-item counts and the sum of the open items' prices. */
const OPEN_COUNTS =
  'SELECT l.name, count(i.id) AS open_items, sum(i.price) AS total FROM app.lists l ' +
  'LEFT JOIN app.items i ON i.list_id = l.id AND i.done = false ' +
  'GROUP BY l.name ORDER BY l.name';

before(async () => {
  server = await startServer();
  await server.rootSql(
    'CREATE NAMESPACE app; ' +
      'CREATE USER TABLE app.lists (id TEXT PRIMARY KEY, name TEXT); ' +
      'CREATE USER TABLE app.items (id TEXT PRIMARY KEY, list_id TEXT, title TEXT, done BOOLEAN, price DECIMAL(10,2), big BIGINT)',
  );
});

after(async () => {
  for (const c of clients) await within(c.close(), 5000, 'close').catch(() => {});
  await server?.stop();
});

/** A user with two lists and three items, and a client that has synced both tables. */
async function syncedUser(prefix) {
  const name = await newUser(prefix);
  await server.sqlAs(name, "INSERT INTO app.lists (id, name) VALUES ('g', 'Groceries'), ('w', 'Work')");
  await server.sqlAs(
    name,
    "INSERT INTO app.items (id, list_id, title, done, price, big) VALUES " +
      "('i1', 'g', 'milk', false, 9.00, 9007199254740993), " +
      "('i2', 'g', 'bread', false, 3.50, 1), " +
      "('i3', 'g', 'eggs', true, 10.00, 2)",
  );
  const c = client(name);
  await c.sync('lists', 'SELECT * FROM app.lists');
  await c.sync('items', 'SELECT * FROM app.items');
  await within(c.settled(), 10000, 'settled');
  return { name, c };
}

test('a join + aggregate runs locally and returns the rows the server returns', async () => {
  const { name, c } = await syncedUser('agg');
  const local = await c.query(OPEN_COUNTS);
  assert.deepEqual(local, [
    { name: 'Groceries', open_items: 2, total: '12.50' },
    { name: 'Work', open_items: 0, total: null },
  ]);
  assert.deepEqual(local, await server.sqlAs(name, OPEN_COUNTS), 'same SQL, same rows online and offline');
  // DECIMAL orders as a number ("10.00" after "9.00"), not as text.
  assert.deepEqual(
    (await c.query('SELECT title FROM app.items ORDER BY price DESC')).map((r) => r.title),
    ['eggs', 'milk', 'bread'],
  );
});

test('the join + aggregate live query follows local and remote writes to either table', async () => {
  const { name, c } = await syncedUser('live');
  const results = [];
  const errors = [];
  const stop = c.live(OPEN_COUNTS, [], (rows) => results.push(rows), (e) => errors.push(e));
  const latest = (list) => results.at(-1)?.find((r) => r.name === list);
  await waitFor(() => latest('Groceries')?.open_items === 2, { what: 'first result' });

  // A local write to the items table: shows at once, before the server confirms it.
  const receipt = await c.table('app.items').insert({ list_id: 'w', title: 'report', done: false, price: '99.99' });
  await waitFor(() => latest('Work')?.open_items === 1 && latest('Work')?.total === '99.99', { what: 'local insert' });
  await c.table('app.items').update('i1', { done: true });
  await waitFor(() => latest('Groceries')?.open_items === 1 && latest('Groceries')?.total === '3.50', {
    what: 'local update',
  });
  // A local write to the lists table.
  await c.table('app.lists').insert({ id: 'h', name: 'Home' });
  await waitFor(() => latest('Home')?.open_items === 0, { what: 'local list insert' });
  // A remote write (another device, through the server).
  await server.sqlAs(name, "INSERT INTO app.items (id, list_id, title, done, price) VALUES ('r1', 'w', 'call', false, 0.01)");
  await waitFor(() => latest('Work')?.open_items === 2 && latest('Work')?.total === '100.00', { what: 'remote insert' });

  assert.equal((await within(receipt.settled, 10000, 'receipt')).status, 'applied');
  await within(c.settled(), 10000, 'settled');
  // Settled means confirmed; the server's copy of the confirmed rows may still be on its way
  // (a write's outcome and its change arrive as separate frames), so the live result is
  // awaited, bounded, rather than read at once.
  const expected = await server.sqlAs(name, OPEN_COUNTS);
  await waitFor(() => JSON.stringify(results.at(-1)) === JSON.stringify(expected), { what: 'convergence' });
  assert.deepEqual(results.at(-1), expected, 'converged with the server');
  assert.deepEqual(errors, []);
  stop();
});

test('a BIGINT beyond 2^53 stays exact: a bigint in results and in parameters', async () => {
  const { c } = await syncedUser('big');
  const rows = await c.query('SELECT id, big, big + 1 AS next FROM app.items WHERE big > $1', [9007199254740992n]);
  assert.deepEqual(rows, [{ id: 'i1', big: 9007199254740993n, next: 9007199254740994n }]);
  const small = await c.query('SELECT count(*) AS n FROM app.items WHERE big < ?', [3]);
  assert.deepEqual(small, [{ n: 2 }], 'integers within 2^53 stay numbers');
});

test('subscriptions are one table; unsynced tables and unsupported SQL are named', async () => {
  const { c } = await syncedUser('shape');
  const refusal = async (sql) => {
    try {
      await c.sync('bad', sql);
    } catch (e) {
      assert.ok(e instanceof KalamError);
      return e.message;
    }
    assert.fail(`sync() accepted ${sql}`);
  };
  assert.match(
    await refusal('SELECT list_id, count(*) FROM app.items GROUP BY list_id'),
    /^aggregate functions are not supported in a subscription.*local query/,
  );
  assert.match(await refusal('SELECT * FROM app.items i JOIN app.lists l ON l.id = i.list_id'), /^JOIN is not supported in a subscription/);
  assert.match(await refusal('SELECT * FROM app.items ORDER BY id LIMIT 5'), /^ORDER BY is not supported in a subscription/);
  await assert.rejects(c.query('SELECT * FROM app.nope'), /table 'app.nope' is not synced to this replica/);
  await assert.rejects(c.query('SELECT name FROM app.lists UNION SELECT title FROM app.items'), /UNION is not supported/);
});
