// Starts the real kalamdb-server binary for the SDK tests and offers a few helpers.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';

export const ROOT_PASSWORD = 'root-secret-for-tests';

/** Path of the server binary: $KALAMDB_SERVER, else $CARGO_TARGET_DIR/debug/kalamdb-server. */
export function serverBinary() {
  if (process.env.KALAMDB_SERVER) return process.env.KALAMDB_SERVER;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'kalamdb-target');
  return join(target, 'debug', 'kalamdb-server');
}

/**
 * Starts a server on 127.0.0.1 (port 0) with a fresh data dir; resolves with
 * `{url, stop(), rootSql(sql, params?)}` once it prints its address and /health answers.
 */
export async function startServer({ timeoutMs = 30000, config } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) throw new Error(`server binary not found: ${bin} (cargo build -p kalamdb-server)`);
  const dataDir = mkdtempSync(join(tmpdir(), 'kalamdb-sdk-test-'));
  const args = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--bcrypt-cost', '4'];
  if (config) {
    // Extra TOML configuration (e.g. short token lifetimes).
    const file = join(dataDir, 'test-config.toml');
    writeFileSync(file, config);
    args.push('--config', file);
  }
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      KALAMDB_ROOT_PASSWORD: ROOT_PASSWORD,
      KALAMDB_JWT_SECRET: 'sdk-test-jwt-secret-0123456789abcdef0123456789',
      KALAMDB_LOG: process.env.KALAMDB_LOG || 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-10000);
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /kalamdb-server listening on (http:\/\/[0-9.:]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr}`));
    });
  });
  child.stdout.resume();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error('server /health did not answer');
    await sleep(50);
  }
  const basic = 'Basic ' + Buffer.from(`root:${ROOT_PASSWORD}`).toString('base64');
  async function rootSql(sql, params) {
    const r = await fetch(`${url}/v1/api/sql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic },
      body: JSON.stringify(params ? { sql, params } : { sql }),
    });
    const body = await r.json();
    if (body.status !== 'success') throw new Error(`root SQL failed: ${sql}: ${JSON.stringify(body.error)}`);
    return body.results;
  }
  /** Runs one statement as `user` through EXECUTE AS USER and returns its rows as objects. */
  async function sqlAs(user, sql, params) {
    const [res] = await rootSql(`EXECUTE AS USER '${user}' (${sql})`, params);
    return res.rows.map((r) => Object.fromEntries(res.schema.map((c, i) => [c.name, r[i]])));
  }
  async function stop() {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      let t;
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => (t = setTimeout(r, 5000)))]);
      clearTimeout(t);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { url, stop, rootSql, sqlAs, child };
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` (sync or async) until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(check, { timeoutMs = 10000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await sleep(intervalMs);
  }
}

/** Rejects if `promise` does not settle within `ms`. */
export function within(promise, ms, what = 'operation') {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}
