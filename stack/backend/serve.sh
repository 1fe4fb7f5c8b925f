#!/bin/sh
# Starts the backend as compose.yaml runs it, as a host process and in a container alike (run from this folder):
#
#   BACKEND_SOCKET=/run/dir/backend.sock sh serve.sh     host processes: a unix socket in unistack's 0700 run folder
#   BACKEND_PORT=8000 sh serve.sh                        containers: TCP on BACKEND_HOST (default 0.0.0.0)
#
# BACKEND_RELOAD=1 runs dev_server.py, which imports the libraries once, keeps the socket bound and forks a fresh
# worker (importing only app/) when a *.py file under app/ changes: a save is served again in well under a second,
# and requests sent meanwhile wait in the socket's backlog. Otherwise plain uvicorn. Either way `exec`: the server
# takes this shell's pid, so the supervisor's signals (SIGTERM) reach it directly.
#
# X-Forwarded-* headers are trusted from FORWARDED_ALLOW_IPS (default: any peer). Only the proxy reaches the
# backend: its socket lies in a 0700 folder, and its TCP port is published nowhere (edge/data networks only).
set -eu
if [ -n "${BACKEND_SOCKET:-}" ]; then
    set -- --uds "$BACKEND_SOCKET"
else
    set -- --host "${BACKEND_HOST:-0.0.0.0}" --port "${BACKEND_PORT:-8000}"
fi
set -- app.main:app "$@" --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}"
if [ "${BACKEND_RELOAD:-0}" = 1 ]; then
    # dev_server.py removes a stale socket file itself (and refuses to take over a live one)
    exec .venv/bin/python dev_server.py "$@" --reload --reload-dir app
fi
# a socket file left by an incarnation that could not clean up (SIGKILL); only this service listens on it
if [ -n "${BACKEND_SOCKET:-}" ]; then rm -f "$BACKEND_SOCKET"; fi
exec .venv/bin/uvicorn "$@"
