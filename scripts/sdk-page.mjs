// A page on the server's own origin that runs the SDK's browser build (sdks/typescript/dist and
// wasm/web), served from the repository through Playwright routing: no CORS, no dev server, and
// the page's IndexedDB belongs to the server's origin. Shared by scripts/measure-idb-startup.mjs
// and examples/todo-react/tests/replica_reopen.test.mjs.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { extname, join, normalize } from 'node:path';
import { CHROMIUM_ARGS } from './chromium.mjs';

export const SDK_DIR = fileURLToPath(new URL('../sdks/typescript/', import.meta.url));
/** Where the page and the SDK's files are served, under the server's origin. */
export const SDK_PAGE_PATH = '/__sdk';
/**
 * Chromium's arguments for such a page: a page served by routing has no address space of its
 * own, so Chromium's Local Network Access checks would block its WebSocket to the loopback
 * server (as in examples/todo-react/tests/cross_origin.test.mjs).
 */
export const SDK_PAGE_ARGS = [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'];

const CONTENT_TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

/**
 * Routes `${origin}${SDK_PAGE_PATH}/...` of `context` to an empty page and the SDK's files
 * (`dist/`, `wasm/web/`, the latter from `wasmDir` if given: another build of the engine).
 */
export async function serveSdk(context, origin, wasmDir = join(SDK_DIR, 'wasm', 'web')) {
  await context.route(`${origin}${SDK_PAGE_PATH}/**`, (route) => {
    const path = normalize(decodeURIComponent(new URL(route.request().url()).pathname)).slice(SDK_PAGE_PATH.length);
    if (path === '/') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>sdk</title>' });
    let file;
    if (path.startsWith('/dist/')) file = join(SDK_DIR, path);
    else if (path.startsWith('/wasm/web/')) file = join(wasmDir, path.slice('/wasm/web/'.length));
    else return route.fulfill({ status: 404, body: '' });
    try {
      return route.fulfill({ contentType: CONTENT_TYPES[extname(path)] ?? 'application/octet-stream', body: readFileSync(file) });
    } catch {
      return route.fulfill({ status: 404, body: '' });
    }
  });
}
