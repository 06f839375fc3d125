// @kalamdb/client against the real server (Node: memory replica, `ws` WebSocket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as Y from 'yjs';
import { createClient, KalamError, base64ToBytes } from '../dist/node.js';
import { startServer, waitFor, within, sleep } from './server.mjs';

let server;
const clients = [];

/** A client for `username` that is closed after the tests. */
function client(username, password = `${username}-password`, extra = {}) {
  const c = createClient({ url: server.url, auth: { username, password }, ...extra });
  clients.push(c);
  return c;
}

let userSeq = 0;
/** A fresh user (role user) for one test, so tests never see each other's rows. */
async function newUser(prefix = 'u') {
  const name = `${prefix}${++userSeq}_${Date.now() % 100000}`;
  await server.rootSql(`CREATE USER '${name}' WITH PASSWORD '${name}-password' ROLE user`);
  return name;
}

before(async () => {
  server = await startServer();
  await server.rootSql(
    'CREATE NAMESPACE app; ' +
      'CREATE USER TABLE app.todos (id TEXT PRIMARY KEY, title TEXT, done BOOLEAN, body CRDT_TEXT)',
  );
});

after(async () => {
  for (const c of clients) await within(c.close(), 5000, 'close').catch(() => {});
  await server?.stop();
});

test('sql() runs statements with params and returns typed row objects', async () => {
  const alice = client(await newUser('alice'));
  const res = await alice.sql(
    "INSERT INTO app.todos (id, title, done) VALUES ($1, $2, $3); SELECT id, title, done FROM app.todos WHERE id = 'a1'",
    ['a1', 'milk', false],
  );
  assert.equal(res.length, 2);
  assert.equal(res[0].rowCount, 1);
  assert.match(res[0].message, /1/);
  assert.deepEqual(res[1].schema.map((c) => [c.name, c.type]), [
    ['id', 'TEXT'],
    ['title', 'TEXT'],
    ['done', 'BOOLEAN'],
  ]);
  assert.deepEqual(res[1].rows, [{ id: 'a1', title: 'milk', done: false }]);
  assert.deepEqual(res[1].rawRows, [['a1', 'milk', false]]);
  const me = await alice.user();
  assert.equal(me.role, 'user');
});

test('sql() keeps BIGINT beyond 2^53 exact both ways, as bigint', async () => {
  await server.rootSql('CREATE USER TABLE app.ids (id BIGINT PRIMARY KEY, label TEXT, ratio DOUBLE)');
  const alice = client(await newUser('alice'));
  const big = 9007199254740993n; // 2^53 + 1: a double would make it ...992
  const min = -9223372036854775808n;
  await alice.sql('INSERT INTO app.ids (id, label, ratio) VALUES ($1, $2, $3), ($4, $5, $6), (7, $7, 1e20)', [
    big,
    '12345678901234567890',
    0.5,
    min,
    'min',
    -1.5,
    'seven',
  ]);
  const [res] = await alice.sql('SELECT id, label, ratio FROM app.ids ORDER BY id');
  assert.deepEqual(res.rows, [
    { id: min, label: 'min', ratio: -1.5 },
    { id: 7, label: 'seven', ratio: 1e20 },
    { id: big, label: '12345678901234567890', ratio: 0.5 },
  ]);
  // A parameter compared with a big value finds it exactly (not its neighbour).
  const [one] = await alice.sql('SELECT label FROM app.ids WHERE id = $1', [big]);
  assert.deepEqual(one.rows, [{ label: '12345678901234567890' }]);
  const [none] = await alice.sql('SELECT label FROM app.ids WHERE id = $1', [big - 1n]);
  assert.deepEqual(none.rows, []);
});

test('sql() errors are KalamError with code, status and statement', async () => {
  const alice = client(await newUser('alice'));
  await assert.rejects(alice.sql('SELECT * FROM app.nope'), (e) => {
    assert.ok(e instanceof KalamError);
    assert.equal(e.code, 'TABLE_NOT_FOUND');
    assert.equal(e.status, 404);
    return true;
  });
  await assert.rejects(alice.sql("SELECT 1; SELEC oops"), (e) => e instanceof KalamError && e.code === 'PARSE_ERROR' && e.status === 400);
  await assert.rejects(alice.sql('CREATE NAMESPACE forbidden_ns'), (e) => e.code === 'FORBIDDEN' && e.status === 403);
  const wrong = client(await newUser('mallory'), 'wrong-password');
  await assert.rejects(wrong.user(), (e) => e instanceof KalamError && e.code === 'UNAUTHORIZED' && e.status === 401);
  await assert.rejects(wrong.sql('SELECT 1'), (e) => e.code === 'UNAUTHORIZED');
});

test('token and token-function auth work for sql() and sync', async () => {
  const name = await newUser('tok');
  const login = await (
    await fetch(`${server.url}/v1/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: name, password: `${name}-password` }),
    })
  ).json();
  const fixed = createClient({ url: server.url, auth: { token: login.access_token } });
  clients.push(fixed);
  assert.equal((await fixed.user()).username, name);
  await fixed.sql("INSERT INTO app.todos (id, title) VALUES ('t1', 'via token')");
  let calls = 0;
  const fn = createClient({
    url: server.url,
    auth: async () => {
      calls++;
      return login.access_token;
    },
  });
  clients.push(fn);
  await fn.sync('todos', 'SELECT * FROM app.todos');
  await within(fn.settled(), 10000, 'settled');
  assert.deepEqual(
    (await fn.query('SELECT id, title FROM app.todos')).map((r) => r.title),
    ['via token'],
  );
  assert.ok(calls >= 1, 'the token function is called');
});

test('sync() replicates the server rows and query() reads them locally as objects', async () => {
  const name = await newUser('sync');
  await server.sqlAs(name, "INSERT INTO app.todos (id, title, done) VALUES ('1', 'one', false), ('2', 'two', true), ('3', 'three', false)");
  const c = client(name);
  await c.sync('todos', 'SELECT * FROM app.todos');
  await within(c.settled(), 10000, 'settled');
  const rows = await c.query('SELECT id, title, done FROM app.todos WHERE done = $1 ORDER BY id', [false]);
  assert.deepEqual(rows, [
    { id: '1', title: 'one', done: false },
    { id: '3', title: 'three', done: false },
  ]);
  const status = await c.status();
  assert.equal(status.online, true);
  assert.equal(status.pendingWrites, 0);
  assert.ok(status.lastSyncedMs > 0);
  await c.unsync('todos');
  await assert.rejects(c.query('SELECT * FROM app.todos'), (e) => e instanceof KalamError);
});

test('live() calls back after a server-side insert and after a local write', async () => {
  const name = await newUser('live');
  const c = client(name);
  await c.sync('todos', 'SELECT * FROM app.todos');
  await within(c.settled(), 10000, 'settled');
  const results = [];
  const stop = c.live('SELECT id, title FROM app.todos ORDER BY id', [], (rows) => results.push(rows));
  await waitFor(() => results.length >= 1, { what: 'first live result' });
  assert.deepEqual(results.at(-1), []);

  await server.sqlAs(name, "INSERT INTO app.todos (id, title) VALUES ('s1', 'from server')");
  await waitFor(() => results.at(-1).some((r) => r.id === 's1'), { what: 'server insert in live result' });

  const receipt = await c.table('app.todos').insert({ id: 'l1', title: 'local' });
  // The optimistic write shows at once, before the server confirms it.
  await waitFor(() => results.at(-1).some((r) => r.id === 'l1'), { what: 'local insert in live result' });
  assert.deepEqual(await within(receipt.settled, 10000, 'receipt'), { status: 'applied', cursor: (await receipt.status()).cursor });
  assert.equal((await receipt.status()).status, 'applied');

  await c.table('app.todos').update('l1', { title: 'changed' });
  await waitFor(() => results.at(-1).some((r) => r.title === 'changed'), { what: 'local update' });
  await c.table('app.todos').delete('s1');
  await waitFor(() => !results.at(-1).some((r) => r.id === 's1'), { what: 'local delete' });
  await within(c.settled(), 10000, 'settled');
  assert.deepEqual(await server.sqlAs(name, 'SELECT id, title FROM app.todos ORDER BY id'), [{ id: 'l1', title: 'changed' }]);

  stop();
  const n = results.length;
  await server.sqlAs(name, "INSERT INTO app.todos (id, title) VALUES ('s2', 'after stop')");
  await waitFor(async () => (await c.query("SELECT id FROM app.todos WHERE id = 's2'")).length === 1, { what: 's2 synced' });
  await sleep(50);
  assert.equal(results.length, n, 'no callbacks after unsubscribe');
});

test('writes made offline are sent when back online; status counts them', async () => {
  const name = await newUser('off');
  const c = client(name);
  const statuses = [];
  c.on('status', (s) => statuses.push(s));
  await c.sync('todos', 'SELECT * FROM app.todos');
  await within(c.settled(), 10000, 'settled');
  c.setOnline(false);
  await waitFor(async () => !(await c.status()).online, { what: 'offline' });
  const todos = c.table('app.todos');
  const r1 = await todos.insert({ title: 'offline one', done: false });
  const r2 = await todos.insert({ id: 'o2', title: 'offline two', done: false });
  await todos.update('o2', { done: true });
  assert.equal(typeof r1.key, 'string', 'a TEXT key is generated offline');
  assert.equal(r2.key, 'o2');
  assert.equal((await c.status()).pendingWrites, 3);
  assert.equal((await r1.status()).status, 'pending');
  assert.equal((await c.query('SELECT * FROM app.todos')).length, 2, 'visible locally while offline');
  await sleep(200);
  assert.deepEqual(await server.sqlAs(name, 'SELECT id FROM app.todos'), [], 'nothing reached the server');

  c.setOnline(true);
  await within(c.settled(), 15000, 'settled after going online');
  assert.deepEqual((await within(r1.settled, 5000, 'r1')).status, 'applied');
  const rows = await server.sqlAs(name, 'SELECT id, title, done FROM app.todos ORDER BY title');
  assert.deepEqual(rows, [
    { id: r1.key, title: 'offline one', done: false },
    { id: 'o2', title: 'offline two', done: true },
  ]);
  assert.equal((await c.status()).pendingWrites, 0);
  assert.ok(statuses.some((s) => s.pendingWrites === 3), 'a status event reported 3 pending writes');
  assert.ok(statuses.some((s) => !s.online) && statuses.at(-1).online);
});

test('a write the server rejects is rolled back and reported', async () => {
  const name = await newUser('rej');
  const c = client(name);
  await c.sync('todos', 'SELECT * FROM app.todos');
  await within(c.settled(), 10000, 'settled');
  const mutations = [];
  c.on('mutation', (m) => mutations.push(m));
  await server.sqlAs(name, "INSERT INTO app.todos (id, title) VALUES ('dup', 'server copy')");
  await waitFor(async () => (await c.query("SELECT id FROM app.todos WHERE id = 'dup'")).length === 1, { what: 'dup synced' });
  // A value of the wrong type is refused locally, at once: nothing is queued.
  await assert.rejects(
    c.table('app.todos').insert({ id: 'r0', done: 'not a boolean' }),
    (e) => e instanceof KalamError && /column 'done' of app.todos: "not a boolean" is not a valid BOOLEAN value/.test(e.message),
  );
  assert.equal((await c.status()).pendingWrites, 0);
  // A column the table does not have (only the server knows): it refuses the whole mutation.
  const bad = await c.mutate([
    { table: 'app.todos', op: 'insert', row: { id: 'r1', title: 'ok part' } },
    { table: 'app.todos', op: 'insert', row: { id: 'r2', title: 'bad part', no_such_column: 1 } },
  ]);
  const outcome = await within(bad.settled, 10000, 'rejection');
  assert.equal(outcome.status, 'rejected');
  assert.equal(outcome.code, 'VALIDATION_ERROR');
  assert.ok(outcome.reason.length > 0);
  assert.deepEqual((await bad.status()).status, 'rejected');
  const ids = (await c.query('SELECT id FROM app.todos ORDER BY id')).map((r) => r.id);
  assert.deepEqual(ids, ['dup'], 'both optimistic inserts rolled back');
  assert.ok(mutations.some((m) => m.seq === bad.seq && m.state.status === 'rejected'), 'mutation event');
  assert.deepEqual((await server.sqlAs(name, 'SELECT id FROM app.todos')).map((r) => r.id), ['dup']);
  // A duplicate key is refused too; the server's row stays.
  const dup = await c.table('app.todos').insert({ id: 'dup', title: 'second copy' });
  assert.equal((await within(dup.settled, 10000, 'dup')).status, 'rejected');
  await waitFor(async () => (await c.query("SELECT title FROM app.todos WHERE id = 'dup'"))[0]?.title === 'server copy', {
    what: 'duplicate rolled back',
  });
});

test('two users are isolated: replicas, live queries and sql()', async () => {
  const [na, nb] = [await newUser('iso_a'), await newUser('iso_b')];
  const a = client(na);
  const b = client(nb);
  await a.sync('todos', 'SELECT * FROM app.todos');
  await b.sync('todos', 'SELECT * FROM app.todos');
  const bLive = [];
  b.live('SELECT id FROM app.todos', (rows) => bLive.push(rows));
  await a.table('app.todos').insert({ id: 'same-id', title: 'alice private' });
  await b.table('app.todos').insert({ id: 'same-id', title: 'bob private' });
  await a.sql("INSERT INTO app.todos (id, title) VALUES ('a-http', 'alice http')");
  await within(Promise.all([a.settled(), b.settled()]), 10000, 'settled');
  await sleep(100);
  assert.deepEqual(
    (await a.query('SELECT id, title FROM app.todos ORDER BY id')).map((r) => r.title),
    ['alice http', 'alice private'],
  );
  assert.deepEqual((await b.query('SELECT id, title FROM app.todos')).map((r) => r.title), ['bob private']);
  assert.deepEqual((await b.sql('SELECT title FROM app.todos'))[0].rows, [{ title: 'bob private' }]);
  assert.ok(bLive.every((rows) => rows.every((r) => r.id === 'same-id')), 'bob never sees alice rows live');
});

test('CRDT_TEXT: a yjs update is merged by the server and its state round-trips into a Y.Doc', async () => {
  const name = await newUser('crdt');
  const phone = client(name);
  const laptop = client(name);
  for (const c of [phone, laptop]) {
    await c.sync('todos', 'SELECT * FROM app.todos');
    await within(c.settled(), 10000, 'settled');
  }
  // A plain yjs document (root Y.Text "text") builds the first version.
  const doc = new Y.Doc();
  doc.getText('text').insert(0, 'hello world');
  const { crdtUpdate } = await import('../dist/node.js');
  const r = await phone.table('app.todos').insert({ id: 'n1', title: 'note', body: crdtUpdate(Y.encodeStateAsUpdate(doc)) });
  assert.equal((await within(r.settled, 10000, 'insert')).status, 'applied');
  assert.deepEqual(await server.sqlAs(name, "SELECT body FROM app.todos WHERE id = 'n1'"), [{ body: 'hello world' }]);

  // Both devices start an editor from the replicated state.
  await within(laptop.settled(), 10000, 'laptop settled');
  await waitFor(async () => (await laptop.query("SELECT body FROM app.todos WHERE id = 'n1'"))[0]?.body === 'hello world', {
    what: 'laptop has the note',
  });
  const docs = [];
  for (const c of [phone, laptop]) {
    const cell = await c.table('app.todos').crdt('n1', 'body');
    assert.equal(cell.text, 'hello world');
    assert.ok(cell.state instanceof Uint8Array && cell.state.length > 0);
    const d = new Y.Doc();
    Y.applyUpdate(d, cell.state);
    assert.equal(d.getText('text').toString(), 'hello world', 'a Y.Doc applying the state sees the text');
    docs.push(d);
  }
  // Concurrent edits on two devices, one of them offline.
  laptop.setOnline(false);
  docs[0].getText('text').insert(0, 'Say: ');
  docs[1].getText('text').insert(docs[1].getText('text').length, '!!!');
  const e1 = await phone.table('app.todos').editText('n1', 'body', Y.encodeStateAsUpdate(docs[0]));
  const e2 = await laptop.table('app.todos').editText('n1', 'body', Y.encodeStateAsUpdate(docs[1]));
  assert.equal((await within(e1.settled, 10000, 'phone edit')).status, 'applied');
  assert.equal((await laptop.query("SELECT body FROM app.todos WHERE id = 'n1'"))[0].body, 'hello world!!!', 'offline edit shows locally');
  laptop.setOnline(true);
  assert.equal((await within(e2.settled, 15000, 'laptop edit')).status, 'applied');
  const expected = 'Say: hello world!!!';
  assert.deepEqual(await server.sqlAs(name, "SELECT body FROM app.todos WHERE id = 'n1'"), [{ body: expected }]);
  for (const c of [phone, laptop]) {
    await waitFor(async () => (await c.query("SELECT body FROM app.todos WHERE id = 'n1'"))[0]?.body === expected, {
      what: 'both replicas converge',
    });
  }
  // A Y.Doc merging the server's final state converges with the device's own edits.
  const cell = await phone.crdt('app.todos', 'n1', 'body');
  Y.applyUpdate(docs[0], cell.state);
  assert.equal(docs[0].getText('text').toString(), expected);
  const fresh = new Y.Doc();
  Y.applyUpdate(fresh, cell.state);
  assert.equal(fresh.getText('text').toString(), expected);

  // SQL text writes are CRDT edits too: a device's later update still merges.
  await server.sqlAs(name, "UPDATE app.todos SET body = 'Say: hello brave world!!!' WHERE id = 'n1'");
  const afterSql = await waitFor(async () => {
    const c2 = await phone.crdt('app.todos', 'n1', 'body');
    return c2?.text === 'Say: hello brave world!!!' ? c2 : null;
  }, { what: 'SQL edit replicated' });
  Y.applyUpdate(docs[0], afterSql.state);
  docs[0].getText('text').insert(0, '>> ');
  const e3 = await phone.table('app.todos').editText('n1', 'body', Y.encodeStateAsUpdate(docs[0]));
  assert.equal((await within(e3.settled, 10000, 'edit after SQL')).status, 'applied');
  assert.deepEqual(await server.sqlAs(name, "SELECT body FROM app.todos WHERE id = 'n1'"), [{ body: '>> Say: hello brave world!!!' }]);
  assert.ok(base64ToBytes(Buffer.from('abc').toString('base64')).length === 3);
});

test('crdt() falls back to the server when the engine cannot read CRDT cells', async () => {
  const name = await newUser('crdtfb');
  await server.sqlAs(name, "INSERT INTO app.todos (id, title, body) VALUES ('f1', 'fallback', 'from SQL')");
  const c = client(name);
  await c.ready;
  c.engineV.crdtCell = undefined; // an engine without crdtCell (older builds)
  const cell = await within(c.crdt('app.todos', 'f1', 'body'), 10000, 'crdt from server');
  assert.equal(cell.text, 'from SQL');
  const d = new Y.Doc();
  Y.applyUpdate(d, cell.state);
  assert.equal(d.getText('text').toString(), 'from SQL');
  assert.equal(await c.crdt('app.todos', 'missing', 'body'), null);
  await assert.rejects(c.crdt('app.todos; DROP', 'x', 'body'), (e) => e.code === 'CLIENT_ERROR');
});

test('a live query started right after sync() waits for the schema instead of failing', async () => {
  const name = await newUser('early');
  await server.sqlAs(name, "INSERT INTO app.todos (id, title) VALUES ('e1', 'early bird')");
  const c = client(name);
  const errors = [];
  const results = [];
  await c.sync('todos', 'SELECT * FROM app.todos');
  const stop = c.live('SELECT id, title FROM app.todos', [], (rows) => results.push(rows), (e) => errors.push(e));
  await waitFor(() => results.at(-1)?.length === 1, { what: 'rows after the first sync' });
  assert.deepEqual(results.at(-1), [{ id: 'e1', title: 'early bird' }]);
  assert.deepEqual(errors, []);
  stop();
});

test('an insert right after sync() waits for the table\'s columns and gets its generated key', async () => {
  const name = await newUser('eager');
  const c = client(name);
  await c.sync('todos', 'SELECT * FROM app.todos');
  // The server has not described app.todos yet: the key column is unknown until it does.
  const receipt = await c.table('app.todos').insert({ title: 'first thing' });
  assert.equal(receipt.insertedKeys.length, 1);
  const [id] = receipt.insertedKeys;
  assert.equal((await receipt.settled).status, 'applied');
  assert.deepEqual(await server.sqlAs(name, 'SELECT id, title FROM app.todos'), [{ id, title: 'first thing' }]);
  assert.deepEqual(await c.query('SELECT id, title FROM app.todos'), [{ id, title: 'first thing' }]);
});

/** The rejection of `promise` (fails the test if it resolves). */
async function rejection(promise, ms, what) {
  const outcome = await within(
    promise.then(
      () => null,
      (e) => e,
    ),
    ms,
    what,
  );
  assert.ok(outcome instanceof KalamError, `${what}: expected a KalamError, got ${outcome}`);
  return outcome;
}

test('a client that cannot reach the server says so: an error event, and settled() rejects', async () => {
  // Nothing listens on port 9 of the loopback interface.
  const c = client('nobody', 'pw', { url: 'http://127.0.0.1:9' });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  await within(c.ready, 5000, 'ready');
  await within(c.sync('todos', 'SELECT * FROM app.todos'), 5000, 'sync');
  const err = await rejection(c.settled(), 10000, 'settled');
  assert.equal(err.code, 'NETWORK_ERROR');
  assert.match(err.message, /cannot reach http:\/\/127\.0\.0\.1:9\/.*check the URL/);
  assert.doesNotMatch(err.message, /\n\s+at /, 'no stack trace in the message');
  await waitFor(() => errors.some((e) => e.code === 'NETWORK_ERROR'), { timeoutMs: 5000, what: 'error event' });
  // Asked again while it keeps failing: rejected at once, and the event is not repeated.
  assert.equal((await rejection(c.settled(), 1000, 'settled again')).code, 'NETWORK_ERROR');
  await sleep(1500);
  assert.equal(errors.filter((e) => e.code === 'NETWORK_ERROR').length, 1, JSON.stringify(errors));
});

test('a wrong password is an error event and a settled() rejection with the sign-in code', async () => {
  const name = await newUser('wrongpw');
  const c = client(name, 'not-the-password');
  const errors = [];
  c.on('error', (e) => errors.push(e));
  await within(c.sync('todos', 'SELECT * FROM app.todos'), 5000, 'sync');
  const err = await rejection(c.settled(), 10000, 'settled');
  assert.equal(err.code, 'UNAUTHORIZED', err.message);
  await waitFor(() => errors.some((e) => e.code === 'UNAUTHORIZED'), { timeoutMs: 5000, what: 'error event' });
});
