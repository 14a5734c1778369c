#!/usr/bin/env bash
# Forward-auth and identity assertions, one command: `bash benches/policy/run.sh`.
#
# One gatehouse (release build, `threads = 1`, access log off) and an nginx upstream
# (`return 200`) on 127.0.0.1. wrk sends, in interleaved rounds, with the same valid token:
#   required    GET /svc/x        the inline proxy, an auth-required route
#   assertion   GET /signed/x     the same route with identity_assertion = true
#   forward     GET /_gatehouse/auth, X-Original-URI: /svc/x   a forward-auth decision
# and reports req/s and gatehouse's CPU time per request (user + system from /proc), with
# the ratios to `required`. Knobs: DURATION=8 CONNS=16 ROUNDS=3, GATEHOUSE_BIN=...
set -euo pipefail
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx curl jq

gatehouse_bin

work_dir policy
for v in UP GH GHM; do free_port "$v"; done
upstream_nginx "$UP"
cat >"$WORK/gatehouse.toml" <<CONF
[server]
listen = "127.0.0.1:$GH"
metrics_listen = "127.0.0.1:$GHM"
data_dir = "$WORK/data"
threads = 1
pid_file = "$WORK/gatehouse.pid"
upgrade_sock = "$WORK/upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[jwt]
access_lifetime_seconds = 3600
[passwords]
argon2_memory_kib = 64
argon2_iterations = 1
[log]
access_log = false
level = "warn"
[forward_auth]
enabled = true
[[routes]]
prefix = "/svc/"
upstreams = ["127.0.0.1:$UP"]
[[routes]]
prefix = "/signed/"
upstreams = ["127.0.0.1:$UP"]
identity_assertion = true
audience = "bench"
CONF

nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
"$GATEHOUSE_BIN" serve -c "$WORK/gatehouse.toml" >"$WORK/gatehouse.out" 2>"$WORK/gatehouse.err" &
GH_PID=$!
PIDS+=("$GH_PID")
wait_http "http://127.0.0.1:$GHM/readyz"
curl -sf -o /dev/null -H 'Content-Type: application/json' \
  -d '{"username":"bench","email":"bench@example.com","password":"Bench-Pass-2024"}' \
  "http://127.0.0.1:$GH/api/auth/register/"
TOKEN=$(curl -sf -H 'Content-Type: application/json' \
  -d '{"username":"bench","password":"Bench-Pass-2024"}' \
  "http://127.0.0.1:$GH/api/token/" | jq -r .access)
AUTH="Authorization: Bearer $TOKEN"
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$GH_PID/stat"; }
RESULTS=$WORK/results.tsv
: >"$RESULTS"

run() { # LABEL PATH [extra header]
  local out=$WORK/wrk.$1.txt before after reqs rps
  local extra=()
  [ -n "${3:-}" ] && extra=(-H "$3")
  before=$(cpu)
  wrk -t 1 -c "$CONNS" -d "${DURATION}s" -H "$AUTH" "${extra[@]}" "http://127.0.0.1:$GH$2" >"$out" 2>&1
  after=$(cpu)
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  if grep -q "Non-2xx" "$out"; then
    echo "$1: non-2xx answers:"; cat "$out"; exit 1
  fi
  printf '%s\t%s\t%s\n' "$1" "$rps" "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" >>"$RESULTS"
  printf '  %-10s %10s req/s  CPU %s us/req\n' "$1" "$rps" "$(tail -1 "$RESULTS" | cut -f3)"
}

say "warm-up"
wrk -t 1 -c "$CONNS" -d 2s -H "$AUTH" "http://127.0.0.1:$GH/svc/x" >/dev/null
wrk -t 1 -c "$CONNS" -d 2s -H "$AUTH" "http://127.0.0.1:$GH/signed/x" >/dev/null
for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  run required /svc/x
  run assertion /signed/x
  run forward /_gatehouse/auth "X-Original-URI: /svc/x"
done

median() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$RESULTS" | sort -g |
  awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base=$(median required 3)
say "medians of $ROUNDS rounds (gatehouse threads = 1, wrk -t1 -c$CONNS, ${DURATION}s each)"
printf '| target | req/s | CPU us/request | CPU vs required |\n|---|---:|---:|---:|\n'
for t in required assertion forward; do
  c=$(median "$t" 3)
  printf '| %s | %s | %s | %.2fx |\n' "$t" "$(median "$t" 2)" "$c" "$(awk -v a="$c" -v b="$base" 'BEGIN {print a / b}')"
done
