// Vite config of the TODO example. The KalamDB server sends no CORS headers by default, so
// the app talks to its own origin and Vite proxies /v1 (HTTP and the sync WebSocket) to the
// server named by KALAMDB_URL (default http://127.0.0.1:8080), in dev and in `vite preview`.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

const target = process.env.KALAMDB_URL || 'http://127.0.0.1:8080';
const proxy = { '/v1': { target, ws: true, changeOrigin: true } };

export default defineConfig({
  plugins: [react()],
  // @kalamdb/client is linked from sdks/typescript, which has its own dev copies of React.
  resolve: { dedupe: ['react', 'react-dom', 'yjs'] },
  server: {
    host: '127.0.0.1',
    proxy,
    fs: { allow: [fileURLToPath(new URL('../..', import.meta.url))] },
  },
  preview: { host: '127.0.0.1', proxy },
  build: { target: 'es2022' },
});
