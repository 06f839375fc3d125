/**
 * `@kalamdb/client` for Node.js: loads the `--target nodejs` WebAssembly build, keeps the
 * replica in memory by default and installs the `ws` package as `globalThis.WebSocket` when
 * Node has none (Node 20).
 */
import { createRequire } from 'node:module';
import { WebSocket as WsWebSocket } from 'ws';
import { KalamClient } from './client.js';
import type { ClientOptions } from './types.js';
import type { WasmModule } from './wasm-api.js';

export * from './core.js';

const g = globalThis as { WebSocket?: unknown };
if (typeof g.WebSocket === 'undefined') g.WebSocket = WsWebSocket;

let loaded: WasmModule | null = null;

/** Loads the WebAssembly engine once (synchronously compiled by the nodejs glue). */
function load(): Promise<WasmModule> {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    loaded = require('../wasm/node/kalamdb_wasm.js') as WasmModule;
  }
  return Promise.resolve(loaded);
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
  return new KalamClient(options, { load, defaultStorage: 'memory' });
}
