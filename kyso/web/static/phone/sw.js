/* kyso's phone service worker (scope /m): shows "Có N văn bản chờ ký" when a push arrives
   (RFC 8030; the payload holds no document content) and opens /m when it is tapped. */
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  const count = Number(data.count) || 1;
  const title = data.title || ("Có " + count + " văn bản chờ ký");
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    windows.forEach((w) => w.postMessage({ kind: "kyso-pending", id: data.id || null }));
    await self.registration.showNotification(title, {
      body: "kyso – Ký số",
      tag: "kyso-pending",
      renotify: true,
      icon: "/static/phone/icon.svg",
      data: { url: "/m" },
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).pathname.startsWith("/m")) { await w.focus(); w.navigate("/m"); return; }
    }
    await self.clients.openWindow("/m");
  })());
});
