#!/usr/bin/env node
// Healthcheck for the dev server: exits 0 when GET <path> answers 200, else 1 (2 s timeout).
//
//   node healthcheck.mjs [path]              the server named by the environment (below); path defaults to "/"
//   node healthcheck.mjs <target> <path>     an explicit target: a unix socket path, or host:port
//
// The target from the environment is what dev-server.mjs listens on, so one command line serves both forms of the
// stack (compose.yaml's healthcheck is shared by host processes and containers): FRONTEND_SOCKET (a unix socket,
// host processes) when set, else 127.0.0.1:FRONTEND_PORT (containers; default 5173).
import { realpathSync } from 'node:fs';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = 2000;
const DEFAULT_PORT = 5173;
const USAGE = 'usage: node healthcheck.mjs [path]   |   node healthcheck.mjs <socket|host:port> <path>';

/** {socketPath} for a path with a slash, else {host, port} from "host:port" or a bare port. */
export function parseTarget(target) {
  if (target.includes('/')) return { socketPath: target };
  const colon = target.lastIndexOf(':');
  const host = colon >= 0 ? target.slice(0, colon).replace(/^\[|\]$/g, '') : '';
  const port = Number(colon >= 0 ? target.slice(colon + 1) : target);
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) return null;
  return { host: host || '127.0.0.1', port };
}

/** The environment's target: FRONTEND_SOCKET, else 127.0.0.1:FRONTEND_PORT. */
export function targetFromEnv(env) {
  if (env.FRONTEND_SOCKET) return env.FRONTEND_SOCKET;
  return `127.0.0.1:${env.FRONTEND_PORT || DEFAULT_PORT}`;
}

function finish(ok, message) {
  (ok ? console.log : console.error)(message);
  process.exit(ok ? 0 : 1);
}

function main(argv, env) {
  if (argv.length > 2 || argv[0] === '-h' || argv[0] === '--help') finish(false, USAGE);
  const [targetText, urlPath] = argv.length === 2 ? argv : [targetFromEnv(env), argv[0] || '/'];
  const target = parseTarget(targetText);
  if (!target || !urlPath.startsWith('/')) finish(false, `bad target ${targetText} or path ${urlPath}\n${USAGE}`);

  const timer = setTimeout(() => finish(false, `unhealthy: no answer within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
  const req = http.request(
    { ...target, path: urlPath, method: 'GET', headers: { Host: 'localhost', Accept: 'text/html' } },
    (res) => {
      res.resume();
      clearTimeout(timer);
      if (res.statusCode === 200) finish(true, `healthy: GET ${urlPath} -> 200`);
      else finish(false, `unhealthy: GET ${urlPath} -> ${res.statusCode}`);
    },
  );
  req.on('error', (err) => {
    clearTimeout(timer);
    finish(false, `unhealthy: ${targetText}: ${err.code || err.message}`);
  });
  req.end();
}

// run as a command (not when a test imports parseTarget / targetFromEnv)
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2), process.env);
}
