#!/usr/bin/env node
// The admin console's first load in headless Chromium against the real server: bytes
// transferred (the server sends the gzip twins) and time to interactive, from navigation start
// to the sign-in form rendered with its handlers attached (the page's
// `kalamdb-admin-interactive` performance mark). Each cold run uses a fresh browser context
// (empty cache); each warm run reloads in the same context (index.html revalidated, 304; the
// hashed assets from the cache).
//
//   node scripts/measure-admin.mjs [--runs N]      (needs admin/node_modules: scripts/build-admin.sh)
//
// Server: $KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server.
import { createRequire } from 'node:module';
import { readdirSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startServer, serverBinary } from '../sdks/typescript/test/server.mjs';
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from './chromium.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { chromium } = createRequire(join(repo, 'admin', 'package.json'))('playwright-core');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 20;

/** Loads the console once in `page`; bytes on the wire per request and the timings. */
async function load(page, cdp, url, reload) {
  const requests = new Map();
  const onResponse = (e) => {
    requests.set(e.requestId, {
      url: e.response.url,
      status: e.response.status,
      encoding: e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? '',
      fromCache: e.response.fromDiskCache || e.response.fromMemoryCache,
      bytes: 0,
    });
  };
  const onFinished = (e) => {
    const r = requests.get(e.requestId);
    if (r) r.bytes = e.encodedDataLength;
  };
  cdp.on('Network.responseReceived', onResponse);
  cdp.on('Network.loadingFinished', onFinished);
  if (reload) await page.reload({ waitUntil: 'load' });
  else await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('html[data-ready="sign-in"]');
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const mark = performance.getEntriesByName('kalamdb-admin-interactive')[0];
    // When the page, its script and its stylesheet had arrived (the server's part, over
    // loopback); the icon comes later and blocks nothing.
    const code = performance.getEntriesByType('resource').filter((r) => /\.(js|css)$/.test(r.name));
    const files = Math.max(nav.responseEnd, ...code.map((r) => r.responseEnd));
    return { tti: mark.startTime, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, files };
  });
  // Let the last loadingFinished events arrive.
  await page.waitForTimeout(50);
  cdp.off('Network.responseReceived', onResponse);
  cdp.off('Network.loadingFinished', onFinished);
  return { ...timing, requests: [...requests.values()] };
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), min: s[0], max: s[s.length - 1] };
}

const fmt = (o) => `median ${o.median.toFixed(1)} ms, p90 ${o.p90.toFixed(1)} ms (min ${o.min.toFixed(1)}, max ${o.max.toFixed(1)})`;

const server = await startServer();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
try {
  const url = `${server.url}/admin/`;
  const cold = [];
  const warm = [];
  let first;
  // One unmeasured load, so the server and Chromium start warm.
  for (let i = 0; i <= runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const c = await load(page, cdp, url, false);
    const w = await load(page, cdp, url, true);
    await context.close();
    if (i === 0) continue;
    first ??= c;
    cold.push(c);
    warm.push(w);
  }
  const dist = join(repo, 'admin', 'dist');
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dist);
  const raw = files.filter((f) => !f.endsWith('.gz')).reduce((n, f) => n + statSync(f).size, 0);
  const gz = files.filter((f) => f.endsWith('.gz')).reduce((n, f) => n + statSync(f).size, 0);

  console.log(`server: ${serverBinary()}`);
  console.log(`machine: ${cpus().length} vCPU (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${await browser.version()} headless`);
  console.log(`admin/dist: ${raw} bytes raw, ${gz} bytes as gzip twins (${files.length} files)`);
  console.log('first load (cold cache), per request:');
  for (const r of first.requests) {
    console.log(`  ${r.status} ${r.url.replace(server.url, '')} ${r.encoding || 'identity'} ${r.bytes} B on the wire`);
  }
  const total = (load) => load.requests.reduce((n, r) => n + r.bytes, 0);
  console.log(`first load: ${first.requests.length} requests, ${total(first)} bytes on the wire (headers included)`);
  console.log(`time to interactive, cold (${runs} runs): ${fmt(stats(cold.map((c) => c.tti)))}`);
  console.log(`  page, script and stylesheet received ${fmt(stats(cold.map((c) => c.files)))}`);
  console.log(`  DOMContentLoaded ${fmt(stats(cold.map((c) => c.dcl)))}; load ${fmt(stats(cold.map((c) => c.load)))}`);
  console.log(`time to interactive, warm reload (${runs} runs): ${fmt(stats(warm.map((c) => c.tti)))}; ${total(warm[0])} bytes on the wire`);
} finally {
  await browser.close();
  await server.stop();
}
