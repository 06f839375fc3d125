// Builds the console into dist/, which the server embeds (see docs/admin.md). Everything is
// a file under /admin/ with a hashed name: no inline script or style, so the server's strict
// CSP (script-src 'self'; style-src 'self') holds.
import { defineConfig } from 'vite';
import { gzipSync } from 'node:zlib';

/** Writes `name.gz` next to every text asset: the server sends it to clients that accept gzip. */
function precompress() {
  return {
    name: 'kalamdb-precompress',
    apply: 'build',
    enforce: 'post',
    generateBundle(_options, bundle) {
      for (const [fileName, item] of Object.entries(bundle)) {
        if (!/\.(html|js|css|svg)$/.test(fileName)) continue;
        const source = item.type === 'chunk' ? item.code : item.source;
        this.emitFile({ type: 'asset', fileName: `${fileName}.gz`, source: gzipSync(source, { level: 9 }) });
      }
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
