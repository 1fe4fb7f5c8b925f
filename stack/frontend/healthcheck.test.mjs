// healthcheck.mjs as compose.yaml runs it: the target from the environment (a unix socket for host processes,
// 127.0.0.1:FRONTEND_PORT in containers), or an explicit one. Real servers on a temp socket and a free port.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTarget, targetFromEnv } from './healthcheck.mjs';

const SCRIPT = fileURLToPath(new URL('./healthcheck.mjs', import.meta.url));

function run(args, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, ...args], { env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, output: stdout + stderr }),
    );
  });
}

function listen(server, ...where) {
  return new Promise((resolve) => server.listen(...where, resolve));
}

describe('parseTarget / targetFromEnv', () => {
  it('reads a socket path, host:port or a bare port', () => {
    expect(parseTarget('/run/x/frontend.sock')).toEqual({ socketPath: '/run/x/frontend.sock' });
    expect(parseTarget('frontend:5173')).toEqual({ host: 'frontend', port: 5173 });
    expect(parseTarget('[::1]:5173')).toEqual({ host: '::1', port: 5173 });
    expect(parseTarget('5173')).toEqual({ host: '127.0.0.1', port: 5173 });
    expect(parseTarget('nowhere')).toBeNull();
    expect(parseTarget('host:99999')).toBeNull();
  });

  it('prefers FRONTEND_SOCKET, then FRONTEND_PORT, then 5173', () => {
    expect(targetFromEnv({ FRONTEND_SOCKET: '/s.sock', FRONTEND_PORT: '1234' })).toBe('/s.sock');
    expect(targetFromEnv({ FRONTEND_PORT: '1234' })).toBe('127.0.0.1:1234');
    expect(targetFromEnv({})).toBe('127.0.0.1:5173');
  });
});

describe('healthcheck.mjs', () => {
  const folder = mkdtempSync(path.join(tmpdir(), 'fe-health-'));
  const socket = path.join(folder, 'frontend.sock');
  const answer = (req, res) => {
    res.statusCode = req.url === '/' ? 200 : 404;
    res.end('ok');
  };
  const tcp = http.createServer(answer);
  const unix = http.createServer(answer);
  let port = 0;

  beforeAll(async () => {
    await listen(tcp, 0, '127.0.0.1');
    port = tcp.address().port;
    await listen(unix, socket);
  });
  afterAll(() => {
    tcp.close();
    unix.close();
    rmSync(folder, { recursive: true, force: true });
  });

  it('asks 127.0.0.1:FRONTEND_PORT (containers)', async () => {
    expect(await run(['/'], { FRONTEND_PORT: String(port) })).toMatchObject({ code: 0 });
    expect(await run(['/missing'], { FRONTEND_PORT: String(port) })).toMatchObject({ code: 1 });
  });

  it('asks FRONTEND_SOCKET when set (host processes)', async () => {
    const result = await run([], { FRONTEND_SOCKET: socket, FRONTEND_PORT: '1' });
    expect(result.code).toBe(0);
    expect(result.output).toContain('GET / -> 200');
  });

  it('takes an explicit target and fails on one nobody listens on', async () => {
    expect(await run([`127.0.0.1:${port}`, '/'], {})).toMatchObject({ code: 0 });
    const nobody = await run([path.join(folder, 'nobody.sock'), '/'], {});
    expect(nobody.code).toBe(1);
    expect(nobody.output).toContain('ENOENT');
  });
});
