#!/usr/bin/env bash
# PostgreSQL vs sled, one command: `bash benches/postgres/run.sh`.
#
# A throwaway PostgreSQL cluster (initdb in the work dir, as the postgres user when root, a
# free loopback port, fsync on: what a deployment has) and two gatehouse processes, one on sled
# and one on PostgreSQL, otherwise the same config (release build, threads = 1, access log
# off), in front of one nginx upstream. In interleaved rounds wrk measures on each:
#   proxied   GET /svc/x                an auth-required proxied route, user cache warm
#   profile   GET /api/auth/profile/
#   login     POST /api/token/          (argon2id at a cheap 64 KiB / 1 pass: the store's share)
#   refresh   POST /api/token/refresh/  (rotation off)
# and reports req/s and gatehouse's CPU per request (user + system from /proc) with the
# PostgreSQL/sled ratios. The database server's own CPU is not in gatehouse's figure; it is
# printed beside it. PIN=1 (default, 2+ CPUs): both gatehouse processes on CPU 1, wrk, nginx
# and PostgreSQL on CPU 0, as benches/load/run.sh pins. Knobs: DURATION=6 CONNS=16 ROUNDS=3
# PIN=1, GATEHOUSE_BIN=...
set -euo pipefail
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-3}
PIN=${PIN:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx curl jq taskset
pin_cpus

gatehouse_bin

work_dir pgbench
chmod 755 "$WORK"
for v in UP PG S SM P PM; do free_port "$v"; done
start_postgres "$PG"

mkdir -p "$WORK/upstream/logs"
cat >"$WORK/upstream/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process on;
events { worker_connections 4096; }
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
http {
  client_body_temp_path $WORK/tb; proxy_temp_path $WORK/tp; fastcgi_temp_path $WORK/tf;
  uwsgi_temp_path $WORK/tu; scgi_temp_path $WORK/ts;
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    location / { default_type text/plain; return 200 "hello from upstream\n"; }
  }
}
CONF
config() { # NAME PORT METRICS_PORT BACKEND
  {
    gatehouse_server "$1" "$2" "$3"
    cat <<CONF
[store]
backend = "$4"
[jwt]
access_lifetime_seconds = 3600
[passwords]
argon2_memory_kib = 64
argon2_iterations = 1
[throttle]
enabled = false
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/svc/"
upstreams = ["127.0.0.1:$UP"]
CONF
  } >"$WORK/$1.toml"
}
config sled "$S" "$SM" sled
config postgres "$P" "$PM" postgres
"$GATEHOUSE_BIN" migrate -c "$WORK/postgres.toml" >/dev/null

"${ON_LOAD_CPU[@]}" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
declare -A PID PORT
for b in sled postgres; do
  "${ON_PROXY_CPU[@]}" "$GATEHOUSE_BIN" serve -c "$WORK/$b.toml" >"$WORK/$b.out" 2>"$WORK/$b.err" &
  PID[$b]=$!
  PIDS+=("${PID[$b]}")
done
PORT[sled]=$S
PORT[postgres]=$P
wait_http "http://127.0.0.1:$SM/readyz"
wait_http "http://127.0.0.1:$PM/readyz"
declare -A ACCESS REFRESH
for b in sled postgres; do
  base="http://127.0.0.1:${PORT[$b]}"
  curl -sf -o /dev/null -H 'Content-Type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"Bench-Pass-2024"}' "$base/api/auth/register/"
  pair=$(curl -sf -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"Bench-Pass-2024"}' "$base/api/token/")
  ACCESS[$b]=$(jq -r .access <<<"$pair")
  REFRESH[$b]=$(jq -r .refresh <<<"$pair")
done
post_script() { # FILE BODY
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
LUA
}
post_script "$WORK/login.lua" '{"username":"bench","password":"Bench-Pass-2024"}'
for b in sled postgres; do
  post_script "$WORK/refresh-$b.lua" "{\"refresh\":\"${REFRESH[$b]}\"}"
done

TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tree() { # PID: it and all its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1" || true); do tree "$c"; done
}
pg_cpu() { # the cluster's postmaster and every process under it (backends change their title)
  local t=0 p
  for p in $(tree "$PG_PID"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
RESULTS=$WORK/results.tsv
: >"$RESULTS"
run() { # BACKEND LABEL PATH [lua script]
  local out=$WORK/wrk.$1.$2.txt before after pgb pga reqs rps extra=()
  [ -n "${4:-}" ] && extra=(-s "$4")
  before=$(cpu "${PID[$1]}"); pgb=$(pg_cpu)
  "${ON_LOAD_CPU[@]}" wrk -t 1 -c "$CONNS" -d "${DURATION}s" -H "Authorization: Bearer ${ACCESS[$1]}" "${extra[@]}" \
    "http://127.0.0.1:${PORT[$1]}$3" >"$out" 2>&1
  after=$(cpu "${PID[$1]}"); pga=$(pg_cpu)
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  if grep -q "Non-2xx" "$out"; then echo "$1 $2: non-2xx answers:"; cat "$out"; exit 1; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" \
    "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" \
    "$(awk -v t=$((pga - pgb)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" >>"$RESULTS"
  printf '  %-9s %-8s %10s req/s  gatehouse CPU %s us/req  postgres CPU %s us/req\n' "$1" "$2" "$rps" \
    "$(tail -1 "$RESULTS" | cut -f4)" "$(tail -1 "$RESULTS" | cut -f5)"
}
say "warm-up"
for b in sled postgres; do
  wrk -t 1 -c "$CONNS" -d 2s -H "Authorization: Bearer ${ACCESS[$b]}" "http://127.0.0.1:${PORT[$b]}/svc/x" >/dev/null
done
for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  for b in sled postgres; do
    run "$b" proxied /svc/x
    run "$b" profile /api/auth/profile/
    run "$b" login /api/token/ "$WORK/login.lua"
    run "$b" refresh /api/token/refresh/ "$WORK/refresh-$b.lua"
  done
done
median() { awk -F'\t' -v b="$1" -v l="$2" -v c="$3" '$1 == b && $2 == l {print $c}' "$RESULTS" | sort -g |
  awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
say "medians of $ROUNDS rounds (gatehouse threads = 1, wrk -t1 -c$CONNS, ${DURATION}s each)"
printf '| target | sled req/s | postgres req/s | sled CPU us/req | postgres CPU us/req | CPU ratio | postgres server CPU us/req |\n|---|---:|---:|---:|---:|---:|---:|\n'
for t in proxied profile login refresh; do
  sc=$(median sled "$t" 4); pc=$(median postgres "$t" 4)
  printf '| %s | %s | %s | %s | %s | %.2fx | %s |\n' "$t" "$(median sled "$t" 3)" "$(median postgres "$t" 3)" \
    "$sc" "$pc" "$(awk -v a="$pc" -v b="$sc" 'BEGIN {print a / b}')" "$(median postgres "$t" 5)"
done
