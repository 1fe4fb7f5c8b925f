#!/usr/bin/env node
// Vite development server on a unix socket (host processes: only the reverse proxy listens on TCP there), or on a
// TCP port (containers, where the proxy reaches it over the `edge` network; that port is published nowhere).
//
//   FRONTEND_SOCKET=/path/to/frontend.sock node dev-server.mjs
//   FRONTEND_PORT=5173 node dev-server.mjs                     (on FRONTEND_HOST, default 0.0.0.0)
//
// Vite runs in middleware mode inside a plain node:http server; its HMR WebSocket is attached to
// the same server, so the proxy forwards both "/" and the HMR upgrade (path "/", subprotocol
// "vite-hmr") to this one socket. The browser's HMR client connects back to the page's own
// host and port (the proxy's), since no HMR host/port/clientPort is configured.
//
// Environment (FRONTEND_SOCKET wins over FRONTEND_PORT, which wins over UNISTACK_RUN_DIR):
//   FRONTEND_SOCKET          socket path
//   FRONTEND_PORT            TCP port instead of a socket; FRONTEND_HOST its address (default 0.0.0.0)
//   UNISTACK_RUN_DIR         neither set: the socket $UNISTACK_RUN_DIR/frontend.sock
//   FRONTEND_SOCKET_MODE     octal mode for the socket file (default 660)
//   FRONTEND_ALLOWED_HOSTS   extra Host names the proxy may send, comma-separated, or "true"
//                            for any (localhost and IP addresses are always allowed)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const root = path.dirname(fileURLToPath(import.meta.url));

/** {socket} or {host, port}: where to listen. */
function listenAddress() {
  const explicit = process.env.FRONTEND_SOCKET;
  if (explicit) return { socket: path.resolve(explicit) };
  const portText = process.env.FRONTEND_PORT;
  if (portText) {
    const port = Number(portText);
    if (!Number.isInteger(port) || port <= 0 || port >= 65536) {
      console.error(`frontend dev server: FRONTEND_PORT=${portText} is not a TCP port`);
      process.exit(2);
    }
    return { host: process.env.FRONTEND_HOST || '0.0.0.0', port };
  }
  if (process.env.UNISTACK_RUN_DIR) return { socket: path.join(process.env.UNISTACK_RUN_DIR, 'frontend.sock') };
  console.error('frontend dev server: set FRONTEND_SOCKET (a unix socket path) or FRONTEND_PORT to listen on');
  process.exit(2);
}

function allowedHosts() {
  const raw = (process.env.FRONTEND_ALLOWED_HOSTS ?? '').trim();
  if (raw === 'true') return true;
  return raw
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
}

/** Removes a leftover socket file; refuses to delete anything that is not a socket. */
function removeStaleSocket(file) {
  let stat;
  try {
    stat = fs.lstatSync(file);
  } catch (err) {
    if (err.code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) {
    console.error(`frontend dev server: ${file} exists and is not a socket; not removing it`);
    process.exit(2);
  }
  fs.unlinkSync(file);
}

const address = listenAddress();
const socket = address.socket; // undefined on TCP
const mode = parseInt(process.env.FRONTEND_SOCKET_MODE ?? '660', 8);

const httpServer = http.createServer();
const vite = await createServer({
  root,
  configFile: path.join(root, 'vite.config.ts'),
  appType: 'spa',
  clearScreen: false,
  server: {
    middlewareMode: true,
    // HMR WebSocket on our own server (Vite 8 name for the former `hmr.server`).
    ws: { server: httpServer },
    allowedHosts: allowedHosts(),
  },
});
httpServer.on('request', vite.middlewares);

if (socket) {
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  removeStaleSocket(socket);
}

await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  const listening = () => {
    httpServer.off('error', reject);
    resolve();
  };
  if (socket) httpServer.listen(socket, listening);
  else httpServer.listen(address.port, address.host, listening);
});
// Remember which file is ours, so that stopping never removes a successor's socket.
const socketIno = socket ? fs.lstatSync(socket).ino : undefined;
if (socket) {
  try {
    fs.chmodSync(socket, mode);
  } catch (err) {
    console.warn(`frontend dev server: could not chmod ${socket}: ${err.message}`);
  }
}
console.log(`frontend dev server listening on ${socket ?? `${address.host}:${address.port}`}`);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`frontend dev server: ${signal}, stopping`);
  // Give up after 5 s whatever happens (exit 0: we were asked to stop).
  setTimeout(() => {
    unlinkQuietly();
    process.exit(0);
  }, 5000).unref();
  try {
    await vite.close();
  } catch (err) {
    console.error(`frontend dev server: closing Vite failed: ${err.message}`);
  }
  await new Promise((resolve) => {
    httpServer.close(() => resolve());
    httpServer.closeAllConnections();
  });
  unlinkQuietly();
  process.exit(0);
}

function unlinkQuietly() {
  if (!socket) return;
  try {
    const stat = fs.lstatSync(socket);
    if (stat.isSocket() && stat.ino === socketIno) fs.unlinkSync(socket);
  } catch {
    // already gone
  }
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGHUP', () => void shutdown('SIGHUP'));
