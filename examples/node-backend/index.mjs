// A small Node.js backend on KalamDB, using the same @kalamdb/client package as the browser app.
//
// - A service account writes into users' partitions with sql() and EXECUTE AS USER (a backend
//   job: reminders, imports, ...), and into a public SHARED table everyone reads.
// - A user's synced replica (in memory in Node) follows both live, as the browser app would.
//
// Environment: KALAMDB_URL (default http://127.0.0.1:8080), SERVICE_USER/SERVICE_PASSWORD,
// APP_USER/APP_PASSWORD, and ROOT_PASSWORD to create the schema and both accounts first
// (idempotent). scripts/run-example.sh node-backend starts a server and sets all of this up.
import { createClient, KalamError } from '@kalamdb/client';

const url = process.env.KALAMDB_URL ?? 'http://127.0.0.1:8080';
const service = { username: process.env.SERVICE_USER ?? 'reminder-bot', password: process.env.SERVICE_PASSWORD ?? 'reminder-bot-pw' };
const user = { username: process.env.APP_USER ?? 'alice', password: process.env.APP_PASSWORD ?? 'alice-password' };
const rounds = Number(process.env.ROUNDS ?? 3);

async function setup() {
  const root = createClient({ url, auth: { username: 'root', password: process.env.ROOT_PASSWORD } });
  const ignoreExists = (e) => {
    if (!(e instanceof KalamError && e.code === 'ALREADY_EXISTS')) throw e;
  };
  await root.sql('CREATE NAMESPACE IF NOT EXISTS app');
  await root.sql('CREATE USER TABLE IF NOT EXISTS app.todos (id TEXT PRIMARY KEY DEFAULT UUID_V7(), title TEXT, done BOOLEAN DEFAULT FALSE, body CRDT_TEXT)');
  await root.sql("CREATE SHARED TABLE IF NOT EXISTS app.announcements (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), message TEXT) WITH (access_level = 'public')");
  await root.sql(`CREATE USER '${service.username}' WITH PASSWORD '${service.password}' ROLE service`).catch(ignoreExists);
  await root.sql(`CREATE USER '${user.username}' WITH PASSWORD '${user.password}' ROLE user`).catch(ignoreExists);
  await root.close();
}

async function main() {
  if (process.env.ROOT_PASSWORD) await setup();

  // The user's replica: what a device of theirs would hold.
  const replica = createClient({ url, auth: user });
  await replica.sync('todos', 'SELECT * FROM app.todos');
  await replica.sync('announcements', 'SELECT * FROM app.announcements');
  replica.on('status', (s) => console.log(`[replica] ${s.online ? 'online' : 'offline'}, ${s.pendingWrites} pending`));
  const seen = new Set();
  const stopTodos = replica.live('SELECT id, title, done FROM app.todos ORDER BY id', (rows) => {
    for (const r of rows) if (!seen.has(r.id)) (seen.add(r.id), console.log(`[replica] todo: ${r.title}`));
  });
  const stopNews = replica.live('SELECT message FROM app.announcements ORDER BY id', (rows) => {
    if (rows.length) console.log(`[replica] latest announcement: ${rows.at(-1).message}`);
  });
  await replica.settled();

  // The backend job: a service account writing with plain SQL over HTTP.
  const bot = createClient({ url, auth: service });
  const me = await bot.user();
  console.log(`[service] signed in as ${me.username} (${me.role})`);
  for (let i = 1; i <= rounds; i++) {
    await bot.sql(`EXECUTE AS USER '${user.username}' (INSERT INTO app.todos (title) VALUES ($1))`, [`reminder #${i} from ${me.username}`]);
    await bot.sql('INSERT INTO app.announcements (message) VALUES ($1)', [`maintenance window ${i}`]);
    await new Promise((r) => setTimeout(r, 200));
  }
  // The user's own write from this process goes through the replica's outbox.
  const receipt = await replica.table('app.todos').insert({ title: 'written through the replica', done: false });
  console.log(`[replica] own write: ${(await receipt.settled).status}`);

  const [counts] = await bot.sql(`EXECUTE AS USER '${user.username}' (SELECT COUNT(*) AS n FROM app.todos)`);
  const local = await replica.query('SELECT id FROM app.todos');
  console.log(`[check] server has ${counts.rows[0].n} todos for ${user.username}; replica has ${local.length}`);
  stopTodos();
  stopNews();
  await Promise.all([replica.close(), bot.close()]);
  if (Number(counts.rows[0].n) !== local.length) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
