#!/usr/bin/env node
// A stand-in for the real stack, for working on the frontend alone: an in-memory notes API
// (REST + WebSocket events) and a small reverse proxy in front of the frontend, sending the
// stack's Content-Security-Policy. No dependencies beyond Node.
//
//   node tools/mock-stack.mjs --frontend-socket /tmp/fe/frontend.sock   # proxy to dev-server.mjs
//   node tools/mock-stack.mjs --dist dist                               # serve a build
//
// Options (or env): --port (MOCK_PORT, default 8088; binds 127.0.0.1 only),
//   --max-upload bytes (MOCK_MAX_UPLOAD, default 1048576; larger uploads get 413).
// Control: POST /__mock/down makes /api answer 502 and drops WebSockets (as the proxy would
// with the backend gone); POST /__mock/up brings it back.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.MOCK_PORT ?? '8088' },
    'frontend-socket': { type: 'string', default: process.env.FRONTEND_SOCKET },
    dist: { type: 'string' },
    'max-upload': { type: 'string', default: process.env.MOCK_MAX_UPLOAD ?? String(1024 * 1024) },
  },
});

const CSP =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";
const MAX_UPLOAD = Number(args['max-upload']);
const frontendSocket = args['frontend-socket'];
const distDir = args.dist ? path.resolve(args.dist) : null;
if (!frontendSocket && !distDir) {
  console.error('mock-stack: give --frontend-socket PATH or --dist DIR');
  process.exit(2);
}

// ---- the mock API ---------------------------------------------------------------------------

let apiDown = false;
let nextNoteId = 1;
let nextAttachmentId = 1;
/** @type {Map<number, any>} */
const notes = new Map();
/** @type {Map<number, {meta: any, data: Buffer}>} */
const files = new Map();
/** @type {Set<net.Socket>} */
const wsClients = new Set();

const now = () => new Date().toISOString();

function broadcast(event) {
  const frame = wsFrame(JSON.stringify(event));
  for (const socket of wsClients) socket.write(frame);
}

function sendJson(res, status, body) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Extracts the part named "file" from a multipart/form-data body. */
function parseMultipartFile(body, contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? '');
  if (!match) return null;
  const boundary = Buffer.from(`--${match[1] ?? match[2]}`);
  let pos = body.indexOf(boundary);
  while (pos !== -1) {
    const headerStart = pos + boundary.length + 2; // skip CRLF
    const headerEnd = body.indexOf('\r\n\r\n', headerStart);
    if (headerEnd === -1) return null;
    const headers = body.subarray(headerStart, headerEnd).toString('utf8');
    const next = body.indexOf(boundary, headerEnd);
    if (next === -1) return null;
    if (/name="file"/i.test(headers)) {
      const filename = /filename="([^"]*)"/i.exec(headers)?.[1] ?? 'upload';
      const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1] ?? 'application/octet-stream';
      return { filename, contentType: type, data: body.subarray(headerEnd + 4, next - 2) };
    }
    pos = next;
  }
  return null;
}

async function handleApi(req, res) {
  if (apiDown) {
    res.writeHead(502, { 'Content-Length': 0 });
    res.end();
    return;
  }
  const url = new URL(req.url, 'http://mock');
  const parts = url.pathname.split('/').filter(Boolean); // ['api', ...]
  const method = req.method ?? 'GET';
  const noteId = Number(parts[2]);

  if (parts[1] === 'notes' && parts.length === 2) {
    if (method === 'GET') return sendJson(res, 200, [...notes.values()].reverse());
    if (method === 'POST') {
      let input;
      try {
        input = JSON.parse((await readBody(req)).toString('utf8'));
      } catch {
        return sendJson(res, 400, { detail: 'Invalid JSON' });
      }
      if (typeof input.title !== 'string' || !input.title.trim()) {
        return sendJson(res, 422, { detail: [{ loc: ['body', 'title'], msg: 'Field required', type: 'missing' }] });
      }
      const stamp = now();
      const note = {
        id: nextNoteId++,
        title: input.title,
        body: typeof input.body === 'string' ? input.body : '',
        created_at: stamp,
        updated_at: stamp,
        attachments: [],
      };
      notes.set(note.id, note);
      broadcast({ type: 'note.created', note });
      return sendJson(res, 201, note);
    }
  }

  if (parts[1] === 'notes' && parts.length === 3) {
    const note = notes.get(noteId);
    if (!note) return sendJson(res, 404, { detail: 'Note not found' });
    if (method === 'GET') return sendJson(res, 200, note);
    if (method === 'PATCH') {
      const input = JSON.parse((await readBody(req)).toString('utf8') || '{}');
      if (typeof input.title === 'string') note.title = input.title;
      if (typeof input.body === 'string') note.body = input.body;
      note.updated_at = now();
      broadcast({ type: 'note.updated', note });
      return sendJson(res, 200, note);
    }
    if (method === 'DELETE') {
      notes.delete(noteId);
      for (const a of note.attachments) files.delete(a.id);
      broadcast({ type: 'note.deleted', id: noteId });
      res.writeHead(204);
      return res.end();
    }
  }

  if (parts[1] === 'notes' && parts[3] === 'attachments' && parts.length === 4 && method === 'POST') {
    const note = notes.get(noteId);
    const body = await readBody(req); // read everything first, as a real backend would
    if (!note) return sendJson(res, 404, { detail: 'Note not found' });
    if (body.length > MAX_UPLOAD + 4096) {
      return sendJson(res, 413, { detail: `Attachments are limited to ${MAX_UPLOAD} bytes` });
    }
    const file = parseMultipartFile(body, req.headers['content-type']);
    if (!file) return sendJson(res, 422, { detail: 'Missing multipart field "file"' });
    if (file.data.length > MAX_UPLOAD) {
      return sendJson(res, 413, { detail: `Attachments are limited to ${MAX_UPLOAD} bytes` });
    }
    const meta = {
      id: nextAttachmentId++,
      filename: file.filename,
      size: file.data.length,
      content_type: file.contentType,
    };
    files.set(meta.id, { meta, data: Buffer.from(file.data) });
    note.attachments.push(meta);
    note.updated_at = now();
    broadcast({ type: 'note.updated', note });
    return sendJson(res, 201, meta);
  }

  if (parts[1] === 'attachments' && parts.length === 3 && method === 'GET') {
    const file = files.get(Number(parts[2]));
    if (!file) return sendJson(res, 404, { detail: 'Attachment not found' });
    res.writeHead(200, {
      'Content-Type': file.meta.content_type,
      'Content-Length': file.data.length,
      'Content-Disposition': `attachment; filename="${file.meta.filename.replace(/"/g, '')}"`,
    });
    return res.end(file.data);
  }

  return sendJson(res, 404, { detail: 'Not Found' });
}

// ---- a minimal WebSocket server (server -> client text frames only) -------------------------

function wsFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  let header;
  if (payload.length < 126) header = Buffer.from([0x81, payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x81;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

function acceptWebSocket(req, socket) {
  const key = req.headers['sec-websocket-key'];
  if (apiDown || !key) {
    socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  wsClients.add(socket);
  socket.on('data', (buf) => {
    // Opcode 8 = close: answer with a close frame and hang up.
    if ((buf[0] & 0x0f) === 8) socket.end(Buffer.from([0x88, 0]));
  });
  socket.on('close', () => wsClients.delete(socket));
  socket.on('error', () => wsClients.delete(socket));
}

// ---- the proxy --------------------------------------------------------------------------------

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

function serveDist(req, res) {
  const urlPath = decodeURIComponent(new URL(req.url, 'http://mock').pathname);
  let file = path.join(distDir, urlPath);
  if (!file.startsWith(distDir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    file = path.join(distDir, 'index.html'); // SPA fallback
  }
  const data = fs.readFileSync(file);
  res.writeHead(200, {
    'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream',
    'Content-Length': data.length,
    'Cache-Control': file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  res.end(data);
}

function proxyToFrontend(req, res) {
  const upstream = http.request(
    { socketPath: frontendSocket, path: req.url, method: req.method, headers: req.headers },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end('frontend not reachable');
  });
  req.pipe(upstream);
}

/** Passes a WebSocket upgrade (Vite's HMR socket) through to the frontend socket untouched. */
function tunnelUpgrade(req, socket, head) {
  const upstream = net.connect(frontendSocket, () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head?.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
}

const server = http.createServer((req, res) => {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  const pathname = new URL(req.url, 'http://mock').pathname;
  if (pathname === '/__mock/down' || pathname === '/__mock/up') {
    apiDown = pathname === '/__mock/down';
    if (apiDown) for (const s of wsClients) s.destroy();
    return sendJson(res, 200, { apiDown });
  }
  if (pathname === '/api' || pathname.startsWith('/api/')) {
    handleApi(req, res).catch((err) => sendJson(res, 500, { detail: String(err) }));
    return;
  }
  if (distDir) serveDist(req, res);
  else proxyToFrontend(req, res);
});

server.on('upgrade', (req, socket, head) => {
  const pathname = new URL(req.url, 'http://mock').pathname;
  if (pathname === '/api/ws') acceptWebSocket(req, socket);
  else if (frontendSocket && !distDir) tunnelUpgrade(req, socket, head);
  else socket.destroy();
});

server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(
    `mock stack on http://127.0.0.1:${args.port} -> ${distDir ? `dist ${distDir}` : `frontend ${frontendSocket}`}`,
  );
});

const stop = () => {
  for (const s of wsClients) s.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
