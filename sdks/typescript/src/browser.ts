/**
 * `@kalamdb/client` for browsers (and bundlers): loads the `--target web` WebAssembly build
 * with `await init()` (the `.wasm` file is fetched next to the glue module), keeps the replica
 * in IndexedDB by default.
 */
import init, * as wasm from '../wasm/web/kalamdb_wasm.js';
import { KalamClient } from './client.js';
import type { ClientOptions } from './types.js';
import type { WasmModule } from './wasm-api.js';

export * from './core.js';

let loaded: Promise<WasmModule> | null = null;

/** Loads and initialises the WebAssembly engine once. */
function load(): Promise<WasmModule> {
  if (!loaded) loaded = init().then(() => wasm as unknown as WasmModule);
  return loaded;
}

/**
 * Creates a client. Returns at once; the engine loads and the replica opens in the background
 * (`client.ready`), and every method waits for it.
 *
 * ```ts
 * const client = createClient({ url: 'https://db.example.com', auth: { username, password } });
 * await client.sync('todos', 'SELECT * FROM app.todos');
 * const stop = client.live('SELECT * FROM app.todos ORDER BY id', (rows) => render(rows));
 * ```
 */
export function createClient(options: ClientOptions): KalamClient {
  return new KalamClient(options, {
    load,
    defaultStorage: 'indexeddb',
    defaultUrl: () => (typeof location !== 'undefined' ? location.origin : undefined),
  });
}
