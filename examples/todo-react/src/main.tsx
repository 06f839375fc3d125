import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import './style.css';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);

// A tiny service worker caches the app shell so a reload works offline (the data itself lives
// in the IndexedDB replica). Skipped in dev, where Vite serves modules on the fly.
if ('serviceWorker' in navigator && import.meta.env.PROD) {
  navigator.serviceWorker
    .register('/sw.js')
    .then(() => navigator.serviceWorker.ready)
    .then(async () => {
      // The first load happened before the worker existed: cache what it fetched.
      const urls = [location.pathname, ...performance.getEntriesByType('resource').map((e) => e.name)].filter((u) => {
        const url = new URL(u, location.href);
        return url.origin === location.origin && !url.pathname.startsWith('/v1/');
      });
      const cache = await caches.open('kalamdb-todo-v2');
      await Promise.all(urls.map((u) => cache.add(u).catch(() => {})));
      document.documentElement.dataset.offlineReady = 'true';
    })
    .catch((e) => console.warn('service worker not registered', e));
}
