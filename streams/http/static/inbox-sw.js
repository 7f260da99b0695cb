/* The inbox's service worker (registered by inbox.js with scope /inbox): the page's shell (its HTML, styles,
 * scripts, manifest and icon) comes from the network when there is one and from the copy kept here when
 * there is not, so the inbox opens on a phone without a connection. The API is never cached: tickets are
 * read live, and actions taken offline wait in the page's own queue (inbox.js) until they can be sent. */
"use strict";

const SHELL_CACHE = "soc-inbox-shell";
const SHELL = ["/inbox", "/static/app.css", "/static/common.js", "/static/inbox.js",
  "/static/inbox.webmanifest", "/static/inbox-icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  // Take the open inbox at once: its actions can wait offline from the first visit on.
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  // Network first, so a new release is used as soon as it is reachable; the kept copy when it is not.
  event.respondWith(fetch(request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.put(url.pathname, copy)));
    }
    return response;
  }).catch(() => caches.match(url.pathname).then((kept) => kept || Response.error())));
});
