// App-shell cache for the TODO example: same-origin GETs go to the network first and fall back
// to the last cached copy, so the app reloads offline. KalamDB's /v1 API is never cached.
const CACHE = 'kalamdb-todo-v2';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/v1/')) return;
  event.respondWith(
    fetch(req)
      .then((res) => {
        if (res.ok) {
          const copy = res.clone();
          caches.open(CACHE).then((c) => c.put(req, copy));
        }
        return res;
      })
      .catch(async () => (await caches.match(req, { ignoreVary: true })) || (req.mode === 'navigate' && (await caches.match('/', { ignoreVary: true }))) || Response.error()),
  );
});
