#!/usr/bin/env bash
# System calls per proxied request, one command: `bash benches/syscalls/run.sh`.
#
# Each proxy under test gets `strace -c -f` attached while wrk (-t1 -c16, DURATION s) sends it
# keep-alive requests; the calls strace counted are divided by the requests wrk completed.
# strace slows every proxy down, and a slower proxy finds more events per epoll_wait, so the
# figures are for comparing the proxies with one another, not absolute. Targets, all with one
# worker on 127.0.0.1 in front of the same nginx upstream: nginx (plain proxy), HAProxy
# (`jwt_verify`), bare Pingora (benches/bare_pingora.rs) and gatehouse's auth-required route,
# release builds. Knobs: DURATION=5, GATEHOUSE_BIN, BARE_BIN, PROFILE=release.
set -euo pipefail
DURATION=${DURATION:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx haproxy curl jq strace
proxy_bins "${PROFILE:-release}" ""

work_dir syscalls
for v in UP NGX HAP BARE_PORT GH GHM; do free_port "$v"; done
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
upstream_nginx "$UP"
mkdir -p "$WORK/nginx/logs"
{
  nginx_head nginx
  nginx_proxy_http "$NGX" "$UP"
} >"$WORK/nginx/nginx.conf"
haproxy_jwt_cfg "$HAP" "$SECRET" "$UP"
{
  gatehouse_server gatehouse "$GH" "$GHM"
  cat <<CONF
[jwt]
access_lifetime_seconds = 3600
[passwords]
argon2_memory_kib = 64
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/"
upstreams = ["127.0.0.1:$UP"]
auth = "required"
CONF
} >"$WORK/gatehouse.toml"
declare -A PID
run_bg() { # NAME CMD...
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>&1 &
  PID[$name]=$!
  PIDS+=($!)
}
run_bg upstream nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
run_bg nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
run_bg haproxy haproxy -db -f "$WORK/haproxy.cfg"
run_bg bare "$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP"
GATEHOUSE_JWT_SECRET=$SECRET run_bg gatehouse "$GATEHOUSE_BIN" serve -c "$WORK/gatehouse.toml"
wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$NGX/"
wait_http "http://127.0.0.1:$BARE_PORT/"
wait_http "http://127.0.0.1:$GHM/readyz"
H='Content-Type: application/json'
curl -sf -XPOST "http://127.0.0.1:$GH/api/auth/register/" -H "$H" \
  -d '{"username":"benchuser","email":"bench@example.com","password":"Bench-Pass-2026!"}' >/dev/null
TOKEN=$(curl -sf -XPOST "http://127.0.0.1:$GH/api/token/" -H "$H" \
  -d '{"username":"benchuser","password":"Bench-Pass-2026!"}' | jq -r .access)
AUTH="Authorization: Bearer $TOKEN"
wait_http "http://127.0.0.1:$HAP/" 401

# count NAME PID URL: strace attached to PID (and its children: nginx's worker) for one wrk run.
count() {
  local name=$1 pid=$2 url=$3 pids=() p
  for p in "$pid" $(pgrep -P "$pid" || true); do pids+=(-p "$p"); done
  strace -q -c -f -o "$WORK/strace.$name" "${pids[@]}" &
  local tracer=$!
  sleep 1
  wrk -t 1 -c 16 -d "${DURATION}s" -H "$AUTH" "$url" >"$WORK/wrk.$name" 2>&1
  kill -INT "$tracer"
  wait "$tracer" || true
  if grep -q Non-2xx "$WORK/wrk.$name"; then echo "$name answered non-2xx:"; cat "$WORK/wrk.$name"; exit 1; fi
  local reqs
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.$name")
  printf '| %s | %s |' "$name" "$reqs"
  # strace's rows: % time, seconds, usecs/call, calls, [errors], syscall. Sleeps of the
  # timer threads are per second, not per request: left out.
  awk -v n="$reqs" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && $NF != "clock_nanosleep" && $NF != "restart_syscall" {
      all += $4
      if ($NF ~ /^(recvfrom|read|readv|recvmsg)$/) rd += $4
      else if ($NF ~ /^(sendto|write|writev|sendmsg)$/) wr += $4
      else if ($NF ~ /^(epoll_wait|epoll_pwait)$/) ep += $4
      else if ($NF == "getpeername") gp += $4
      else if ($NF == "futex") fx += $4
      else other += $4
    }
    END { printf " %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", all / n, rd / n, wr / n, ep / n, gp / n, fx / n, other / n }' "$WORK/strace.$name"
}
say "system calls per request (strace -c -f, wrk -t1 -c16 -d${DURATION}s, keep-alive)"
echo "| proxy | requests | all per request | reads | writes | epoll_wait | getpeername | futex | other |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
count nginx "${PID[nginx]}" "http://127.0.0.1:$NGX/x"
count haproxy "${PID[haproxy]}" "http://127.0.0.1:$HAP/x"
count bare "${PID[bare]}" "http://127.0.0.1:$BARE_PORT/x"
count gatehouse "${PID[gatehouse]}" "http://127.0.0.1:$GH/x"
echo "(strace's tables: $WORK/strace.* with KEEP=1)"
