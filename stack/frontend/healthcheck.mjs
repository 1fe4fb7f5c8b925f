#!/usr/bin/env node
// Healthcheck over a unix socket: exits 0 when GET <path> answers 200, else 1 (2 s timeout).
//
//   node healthcheck.mjs <socket> [path]      e.g. node healthcheck.mjs "$FRONTEND_SOCKET" /
//
// The socket defaults to $FRONTEND_SOCKET, the path to "/".
import http from 'node:http';

const socketPath = process.argv[2] || process.env.FRONTEND_SOCKET;
const urlPath = process.argv[3] || '/';
const TIMEOUT_MS = 2000;

if (!socketPath) {
  console.error('usage: node healthcheck.mjs <socket> [path]');
  process.exit(1);
}

function finish(ok, message) {
  (ok ? console.log : console.error)(message);
  process.exit(ok ? 0 : 1);
}

const timer = setTimeout(() => finish(false, `unhealthy: no answer within ${TIMEOUT_MS} ms`), TIMEOUT_MS);

const req = http.request(
  { socketPath, path: urlPath, method: 'GET', headers: { Host: 'localhost', Accept: 'text/html' } },
  (res) => {
    res.resume();
    clearTimeout(timer);
    if (res.statusCode === 200) finish(true, `healthy: GET ${urlPath} -> 200`);
    else finish(false, `unhealthy: GET ${urlPath} -> ${res.statusCode}`);
  },
);
req.on('error', (err) => {
  clearTimeout(timer);
  finish(false, `unhealthy: ${err.code || err.message}`);
});
req.end();
