#!/bin/bash
# The proxy's healthcheck: GET /_proxy/health (answered by Caddy itself, so a restarting backend never gets the proxy
# restarted too) on 127.0.0.1:$HTTP_PORT; exit 0 on 200, else 1, within 3 s. bash's /dev/tcp, no curl or Python:
# the proxy's image holds Caddy, the Caddyfile and the base system, and this is the same check in both forms of the
# stack (compose.yaml's healthcheck is shared by host processes and containers).
#
#   bash healthcheck.sh [PATH]        (PATH defaults to /_proxy/health; HTTP_PORT defaults to 8080)
set -u
port=${HTTP_PORT:-8080}
path=${1:-/_proxy/health}
fail() {
    echo "GET http://127.0.0.1:$port$path failed: $*"
    exit 1
}
# loopback: refused at once when nothing listens (the healthcheck's own timeout bounds everything else)
{ exec 3<> "/dev/tcp/127.0.0.1/$port"; } 2> /dev/null || fail "cannot connect (nothing listens?)"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: stack-proxy-healthcheck\r\nConnection: close\r\n\r\n' \
    "$path" "$port" >&3 || fail "cannot send the request"
IFS= read -r -t 3 status <&3 || fail "no answer within 3 s"
exec 3<&-
status=${status%$'\r'}
case $status in
"HTTP/1.1 200 "* | "HTTP/1.0 200 "*) echo "$status" ;;
*) fail "answered ${status:-nothing}" ;;
esac
