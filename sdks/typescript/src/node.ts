/**
 * `@kalamdb/client` for Node.js: loads the `--target nodejs` WebAssembly build, keeps the
 * replica in memory by default and installs the `ws` package as `globalThis.WebSocket` when
 * Node has none (Node 20).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { WebSocket as WsWebSocket } from 'ws';
import { KalamClient } from './client.js';
import type { ClientOptions } from './types.js';
import type { WasmModule } from './wasm-api.js';

export * from './core.js';

const g = globalThis as { WebSocket?: unknown };
if (typeof g.WebSocket === 'undefined') g.WebSocket = WsWebSocket;

let loaded: WasmModule | null = null;

/** `setTimeout` for the engine: its timers (pings, backoff, token renewal) never keep Node alive. */
function engineSetTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}

/**
 * Loads the WebAssembly engine once. The nodejs glue is CommonJS; it is evaluated here with
 * its own `setTimeout` (unref'd timers), so a closed client leaves nothing behind that keeps the
 * process running. Each open client holds the process alive instead ({@link keepAlive}).
 */
function load(): Promise<WasmModule> {
  if (!loaded) {
    const file = createRequire(import.meta.url).resolve('../wasm/node/kalamdb_wasm.js');
    const module = { exports: {} as Record<string, unknown> };
    const run = new Function('exports', 'require', 'module', '__filename', '__dirname', 'setTimeout', readFileSync(file, 'utf8'));
    run(module.exports, createRequire(file), module, file, dirname(file), engineSetTimeout);
    loaded = module.exports as unknown as WasmModule;
  }
  return Promise.resolve(loaded);
}

/** Keeps the process running while a client is open (like an open connection); released by close(). */
function keepAlive(): () => void {
  const t = setInterval(() => {}, 1 << 30);
  return () => clearInterval(t);
}

/**
 * Creates a client. Returns at once; the engine loads and the replica opens in the background
 * (`client.ready`), and every method waits for it.
 *
 * ```ts
 * const client = createClient({ url: 'http://127.0.0.1:8080', auth: { username, password } });
 * const [r] = await client.sql('SELECT * FROM app.todos WHERE done = $1', [false]);
 * ```
 */
export function createClient(options: ClientOptions): KalamClient {
  return new KalamClient(options, { load, defaultStorage: 'memory', keepAlive });
}
