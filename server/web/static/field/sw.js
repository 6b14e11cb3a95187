// Service worker (scope /field/): the shell is precached at install, so the app boots with no
// network after the first load. The API (/mobile/v1) is never cached. A new version waits until
// the inspector taps "update" (never forced in the middle of a record).
const VERSION = "2499cdba41";
const SHELL = ["index.html","app-70347c780e.js","app-9cbd0fe2fc.css","hash-worker-0351162ab2.js","icon.svg","manifest.webmanifest"];
const CACHE = `qf-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL.map((f) => new Request(`/field/${f}`, { cache: "reload" })))));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith("qf-shell-") && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data?.type === "skip-waiting") self.skipWaiting();
});

// Background Sync: wake the open app, which holds the unlocked key and does the sync itself.
self.addEventListener("sync", (event) => {
  if (event.tag !== "qf-sync") return;
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((list) => list.forEach((c) => c.postMessage({ type: "sync" }))));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/field/")) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const path = url.pathname === "/field/" ? "/field/index.html" : url.pathname;
    const hit = await cache.match(path);
    if (hit) return hit;
    try {
      return await fetch(event.request);
    } catch {
      return (await cache.match("/field/index.html")) || Response.error();
    }
  })());
});
