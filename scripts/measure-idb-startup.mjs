#!/usr/bin/env node
// Start-up of a large IndexedDB replica in headless Chromium, through the real SDK and the real
// server. For each size: a user's table is filled on the server, a page syncs it into an
// IndexedDB replica (@kalamdb/client, browser build) and the browser is closed. Then, several
// times, Chromium is started again on the same profile (the replica on disk, as after a restart
// of the browser), with the server stopped, and the page times:
//
//   ready        createClient() -> client.ready (engine loaded, IndexedDB opened)
//   first query  createClient() -> the first local query's rows (`SELECT count(*)`), answered
//                offline from the replica loaded out of IndexedDB
//   next query   a top-10 query right after it (the table's typed copy is made by the first)
//
// and records the IndexedDB usage (navigator.storage.estimate and the profile's IndexedDB
// directory), the JS heap, and the wasm memory after the first query (the loaded replica: the
// most the module grew to while loading) and after the next one (which copies the rows that
// pass its filter, so it may grow the memory further). Prints a table with the
// median of the runs.
//
//   node scripts/measure-idb-startup.mjs [--rows 10000,100000] [--runs 5] [--multi-tab both|on|off]
//                                        [--profile PREFIX] [--compare before=DIR,after=DIR]
//
// --profile writes a CPU profile of the first start-up of each size (PREFIX-<rows>-....cpuprofile,
// for Chrome DevTools) and prints the functions with the most self time; with
// KALAMDB_WASM_WEB=<dir of a wasm-bindgen --target web build that keeps its name section> the
// wasm functions have names.
//
// Needs: the SDK built (scripts/build-wasm.sh, then `npm run build` in sdks/typescript),
// playwright-core (examples/todo-react or admin node_modules), /usr/bin/chromium, and the
// server binary: $KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server.
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startServer, serverBinary } from '../sdks/typescript/test/server.mjs';
import { CHROMIUM } from './chromium.mjs';
import { SDK_DIR as sdkDir, SDK_PAGE_ARGS, SDK_PAGE_PATH, serveSdk } from './sdk-page.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** playwright-core from whichever package of the repo has it installed. */
function playwright() {
  for (const pkg of ['examples/todo-react', 'admin']) {
    try {
      return createRequire(join(repo, pkg, 'package.json'))('playwright-core');
    } catch {
      /* try the next */
    }
  }
  throw new Error('playwright-core not found: npm ci in examples/todo-react or admin');
}

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const sizes = arg('rows', '10000,100000').split(',').map(Number);
const runs = Number(arg('runs', '5'));
const profileTo = arg('profile', '');
// The engine builds to start with: KALAMDB_WASM_WEB (e.g. a build that keeps its name section,
// for --profile) or the SDK's wasm/web; with --compare, several (label=dir,...), run in turn
// on the same rows. Each build syncs its own replica (its own browser profile) from the same
// server, so builds that store rows differently are each measured on their own format.
const builds = arg('compare', '')
  ? arg('compare', '')
      .split(',')
      .map((b) => ({ label: b.split('=')[0], dir: b.split('=')[1] }))
  : [{ label: '', dir: process.env.KALAMDB_WASM_WEB || join(sdkDir, 'wasm', 'web') }];
const multiTabModes = { both: [true, false], on: [true], off: [false] }[arg('multi-tab', 'on')];
if (!multiTabModes) throw new Error('--multi-tab takes both, on or off');

// precise-memory-info: performance.memory otherwise rounds to coarse buckets.
const ARGS = [...SDK_PAGE_ARGS, '--enable-precise-memory-info'];
const BENCH = SDK_PAGE_PATH;
const DB_NAME = 'kalamdb-startup-bench';

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function dirBytes(dir) {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

async function openPage(chromium, profile, origin, wasmDir = builds[0].dir) {
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });
  await serveSdk(context, origin, wasmDir);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error('[page error]', e.message));
  page.on('console', (m) => process.env.DEBUG_CONSOLE && console.log('[page]', m.text()));
  page.setDefaultTimeout(600_000);
  await page.goto(`${origin}${BENCH}/`);
  return { context, page };
}

/** Fills `app.todos` of user `bench` with `rows` rows of 5 columns, 1,000 per INSERT. */
async function fillServer(server, rows) {
  await server.rootSql(
    'CREATE NAMESPACE app; CREATE USER TABLE app.todos (id TEXT PRIMARY KEY, title TEXT, done BOOLEAN, priority INT, created TIMESTAMP); ' +
      "CREATE USER 'bench' WITH PASSWORD 'bench-password' ROLE user",
  );
  const login = await fetch(`${server.url}/v1/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'bench', password: 'bench-password' }),
  }).then((r) => r.json());
  for (let start = 0; start < rows; start += 1000) {
    const values = [];
    for (let i = start; i < Math.min(rows, start + 1000); i++) {
      const id = `0190a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, '0')}`;
      values.push(`('${id}', 'Buy groceries for the week, item ${i}', ${i % 3 === 0}, ${i % 5}, '2026-03-01T12:34:56.789012Z')`);
    }
    const r = await fetch(`${server.url}/v1/api/sql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${login.access_token}` },
      body: JSON.stringify({ sql: `INSERT INTO app.todos (id, title, done, priority, created) VALUES ${values.join(',')}` }),
    }).then((r) => r.json());
    if (r.status !== 'success') throw new Error(`insert failed: ${JSON.stringify(r.error)}`);
  }
}

/** Syncs the table into the page's IndexedDB replica; catch-up time and storage used. */
function syncIntoReplica(page, url, multiTab) {
  return page.evaluate(
    async ({ url, dbName, bench, multiTab }) => {
      const { createClient } = await import(`${bench}/dist/browser.js`);
      const t0 = performance.now();
      const client = createClient({ url, auth: { username: 'bench', password: 'bench-password' }, storage: 'indexeddb', dbName });
      await client.ready;
      await client.sync('todos', 'SELECT * FROM app.todos');
      await client.settled();
      const ms = performance.now() - t0;
      const [{ n }] = await client.query('SELECT count(*) AS n FROM app.todos');
      await client.close();
      const { usage } = await navigator.storage.estimate();
      return { ms, rows: Number(n), usage };
    },
    { url, dbName: DB_NAME, bench: BENCH, multiTab },
  );
}

/** One start-up, offline: timings and memory. */
function startUp(page, url, multiTab) {
  return page.evaluate(
    async ({ url, dbName, bench, multiTab }) => {
      const { createClient } = await import(`${bench}/dist/browser.js`);
      // The engine module is fetched and compiled before the clock starts: a page loads it once.
      const wasm = await import(`${bench}/wasm/web/kalamdb_wasm.js`);
      const exports = await wasm.default();
      const t0 = performance.now();
      // The SDK always shares an IndexedDB replica between tabs where the browser can; without
      // multi-tab the engine is opened directly (what the SDK's Node and memory paths do).
      const client = multiTab
        ? createClient({ url, auth: { username: 'bench', password: 'bench-password' }, storage: 'indexeddb', dbName, online: false })
        : await wasm.KalamClient.open({ url: url.replace(/^http/, 'ws') + '/v1/ws', storage: 'indexeddb', dbName, online: false, multiTab: false }, () =>
            Promise.reject(new Error('offline')),
          );
      await client.ready;
      const ready = performance.now() - t0;
      const n = multiTab
        ? Number((await client.query('SELECT count(*) AS n FROM app.todos'))[0].n)
        : Number((await client.query('SELECT count(*) AS n FROM app.todos', null)).rows[0][0]);
      const first = performance.now() - t0;
      const wasmLoaded = exports.memory.buffer.byteLength;
      const t1 = performance.now();
      const topSql = 'SELECT id, title FROM app.todos WHERE done = false ORDER BY priority DESC, id LIMIT 10';
      const top = multiTab ? await client.query(topSql) : (await client.query(topSql, null)).rows;
      const next = performance.now() - t1;
      const { usage } = await navigator.storage.estimate();
      const heap = performance.memory?.usedJSHeapSize ?? 0;
      const wasmBytes = exports.memory.buffer.byteLength;
      await client.close();
      return { ready, first, next, rows: Number(n), top: top.length, usage, heap, wasmLoaded, wasmBytes };
    },
    { url, dbName: DB_NAME, bench: BENCH, multiTab },
  );
}

/** The functions with the most self time in a CPU profile (wasm functions by name when the
 * module keeps its name section). */
function printProfile(cpu, file) {
  const self = new Map();
  const dt = new Map();
  for (let i = 0; i < cpu.samples.length; i++) dt.set(cpu.samples[i], (dt.get(cpu.samples[i]) ?? 0) + (cpu.timeDeltas[i] ?? 0));
  for (const node of cpu.nodes) {
    const name = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').pop()}`;
    self.set(name, (self.get(name) ?? 0) + (dt.get(node.id) ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`  profile of run 1 written to ${file}; self time by function (of ${(total / 1000).toFixed(0)} ms):`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`    ${(us / 1000).toFixed(1).padStart(8)} ms  ${name.slice(0, 140)}`);
  }
}

const MB = (b) => (b / 1048576).toFixed(1);

async function measure(chromium, rows, multiTab) {
  const server = await startServer();
  const profiles = new Map(builds.map((b) => [b.label, mkdtempSync(join(tmpdir(), 'kalamdb-startup-profile-'))]));
  const synced = new Map();
  let summary;
  try {
    const origin = server.url;
    let t = performance.now();
    await fillServer(server, rows);
    const fillMs = performance.now() - t;
    for (const build of builds) {
      const profile = profiles.get(build.label);
      const { context, page } = await openPage(chromium, profile, origin, build.dir);
      const s = await syncIntoReplica(page, origin, multiTab);
      await context.close();
      if (s.rows !== rows) throw new Error(`synced ${s.rows} rows, expected ${rows}`);
      s.idbDir = dirBytes(join(profile, 'Default', 'IndexedDB'));
      synced.set(build.label, s);
      console.log(
        `${rows} rows, multiTab ${multiTab}${build.label ? ', ' + build.label : ''}: server filled in ${(fillMs / 1000).toFixed(1)} s; synced into IndexedDB in ${(s.ms / 1000).toFixed(2)} s ` +
          `(${Math.round(rows / (s.ms / 1000))} rows/s, end to end); storage.estimate ${MB(s.usage)} MB, IndexedDB dir ${MB(s.idbDir)} MB`,
      );
    }
    // Offline from here on: nothing can come from the server.
    await server.stop();
    const results = new Map(builds.map((b) => [b.label, []]));
    for (let i = 0; i < runs; i++) {
      for (const build of builds) {
        const { context, page } = await openPage(chromium, profiles.get(build.label), origin, build.dir);
        const cdp = profileTo && i === 0 ? await context.newCDPSession(page) : null;
        if (cdp) {
          await cdp.send('Profiler.enable');
          await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
          await cdp.send('Profiler.start');
        }
        // A build that cannot open the replica is reported, not fatal: the others still run.
        const r = await startUp(page, origin, multiTab).catch((e) => ({ error: e.message.split('\n')[0] }));
        if (cdp) {
          const { profile: cpu } = await cdp.send('Profiler.stop');
          const file = `${profileTo}-${rows}-${multiTab ? 'tabs' : 'single'}${build.label ? '-' + build.label : ''}.cpuprofile`;
          writeFileSync(file, JSON.stringify(cpu));
          printProfile(cpu, file);
        }
        await context.close();
        if (r.error) {
          console.log(`  run ${i + 1}${build.label ? ' ' + build.label : ''}: FAILED: ${r.error}`);
          results.get(build.label).push(r);
          continue;
        }
        if (r.rows !== rows || r.top !== 10) throw new Error(`reopened replica answered ${r.rows} rows / ${r.top} top rows`);
        console.log(
          `  run ${i + 1}${build.label ? ' ' + build.label : ''}: ready ${r.ready.toFixed(0)} ms, first query ${r.first.toFixed(0)} ms, ` +
            `next query ${r.next.toFixed(1)} ms, JS heap ${MB(r.heap)} MB, wasm memory ${MB(r.wasmLoaded)} / ${MB(r.wasmBytes)} MB`,
        );
        results.get(build.label).push(r);
      }
    }
    summary = builds.map(({ label }) => {
      const all = results.get(label);
      const rs = all.filter((r) => !r.error);
      return {
        failed: all.length - rs.length,
        error: all.find((r) => r.error)?.error,
        rows,
        multiTab,
        label,
        ready: median(rs.map((r) => r.ready)),
        first: median(rs.map((r) => r.first)),
        next: median(rs.map((r) => r.next)),
        heap: median(rs.map((r) => r.heap)),
        wasmLoaded: median(rs.map((r) => r.wasmLoaded)),
        wasmBytes: median(rs.map((r) => r.wasmBytes)),
        usage: synced.get(label).usage,
        idbDir: synced.get(label).idbDir,
        syncRowsPerS: rows / (synced.get(label).ms / 1000),
      };
    });
  } catch (e) {
    // Kept to look into (Chrome DevTools on the profile, or another run of the start-up).
    console.error(`start-up failed; the browser profiles with the replicas stay in ${[...profiles.values()].join(', ')}`);
    throw e;
  } finally {
    await server.stop();
  }
  for (const profile of profiles.values()) rmSync(profile, { recursive: true, force: true });
  return summary;
}

if (!existsSync(join(sdkDir, 'dist', 'browser.js')) || !existsSync(join(sdkDir, 'wasm', 'web', 'kalamdb_wasm_bg.wasm'))) {
  throw new Error('build the SDK first: scripts/build-wasm.sh && (cd sdks/typescript && npm run build)');
}
const { chromium } = playwright();
console.log(
  `measure-idb-startup: ${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `server ${serverBinary()}, ${runs} runs per size`,
);
const summary = [];
for (const rows of sizes) for (const multiTab of multiTabModes) summary.push(...(await measure(chromium, rows, multiTab)));
console.log('\n| rows | multi-tab | build | ready | first local query | next query | IndexedDB (estimate / dir) | JS heap | wasm memory (loaded / after next) | sync into IndexedDB |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const s of summary) {
  if (s.failed) console.log(`| ${s.rows.toLocaleString('en')} | ${s.multiTab ? 'on' : 'off'} | ${s.label || '-'} | ${s.failed} of ${runs} runs failed: ${s.error} |`);
  if (s.failed === runs) continue;
  console.log(
    `| ${s.rows.toLocaleString('en')} | ${s.multiTab ? 'on' : 'off'} | ${s.label || '-'} | ${s.ready.toFixed(0)} ms | ${s.first.toFixed(0)} ms | ${s.next.toFixed(1)} ms | ` +
      `${MB(s.usage)} / ${MB(s.idbDir)} MB | ${MB(s.heap)} MB | ${MB(s.wasmLoaded)} / ${MB(s.wasmBytes)} MB | ${Math.round(s.syncRowsPerS).toLocaleString('en')} rows/s |`,
  );
}
