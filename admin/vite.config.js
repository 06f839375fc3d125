// Builds the console into dist/, which the server embeds (see docs/admin.md). Everything is
// a file under /admin/ with a hashed name: no inline script or style, so the server's strict
// CSP (script-src 'self' 'wasm-unsafe-eval'; style-src 'self') holds; the SQL editor's completion
// (admin/wasm, built by scripts/build-admin.sh) is a script and a .wasm loaded on first use.
import { defineConfig } from 'vite';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * Writes `name.gz` next to every text asset and the .wasm: the server sends it to clients that
 * accept gzip. After the files are written, as Vite still rewrites a chunk with a dynamic
 * import (its preload list) in generateBundle.
 */
function precompress() {
  return {
    name: 'kalamdb-precompress',
    apply: 'build',
    writeBundle: {
      order: 'post',
      handler(options, bundle) {
        for (const fileName of Object.keys(bundle)) {
          if (!/\.(html|js|css|svg|wasm)$/.test(fileName)) continue;
          const file = join(options.dir, fileName);
          writeFileSync(`${file}.gz`, gzipSync(readFileSync(file), { level: 9 }));
        }
      },
    },
  };
}

export default defineConfig({
  base: '/admin/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  plugins: [precompress()],
  build: {
    target: 'es2022',
    // Every asset a file of its own (no data: URLs), and no inline polyfill.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    sourcemap: false,
  },
  // `npm run dev` against a local server (scripts/run-server.sh).
  server: {
    proxy: {
      '/v1': { target: process.env.KALAMDB_URL || 'http://127.0.0.1:8080', ws: true },
      '/admin/api': process.env.KALAMDB_URL || 'http://127.0.0.1:8080',
      '/health': process.env.KALAMDB_URL || 'http://127.0.0.1:8080',
      '/metrics': process.env.KALAMDB_URL || 'http://127.0.0.1:8080',
    },
  },
});
