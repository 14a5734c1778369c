#!/usr/bin/env bash
# The load benchmark, one command: `bash benches/load/run.sh` from the repository root.
#
# Starts on 127.0.0.1 (free ports, a temp dir, everything stopped on exit):
#   upstream  nginx, 1 worker, `return 200` with a 20-byte body
#   nginx     plain reverse proxy to the upstream, 1 worker, upstream keepalive
#   haproxy   nbthread 1, HS256 `jwt_verify` of the same token, upstream keepalive
#   bare      a Pingora ProxyHttp that only forwards (benches/bare_pingora.rs), 1 worker: the
#             floor under gatehouse, so the table separates Pingora's cost from gatehouse's
#   gatehouse `[server] threads = 1`, /pub/ (auth = "public"), /lim/ (the same with a rate limit
#             never reached) and / (auth = "required"; a token, an API key, a session cookie),
#             argon2 defaults, access log off (the peers log nothing either); a second
#             gatehouse with the access log on (stdout to a file) and hash_queue = 64
# then runs wrk against each, ROUNDS interleaved rounds, and prints median req/s and p99,
# the proxies' CPU time per request, the ratios, the user API under load, proxied p99 during
# 200 concurrent logins (default hash queue 256, then a too-small 64), and RSS
# after 1M and 2M proxied requests.
#
# Knobs (environment): DURATION=10 CONNS=32 THREADS=2 ROUNDS=3 PIN=1 RSS_REQUESTS=1000000
#   PIN=1 pins each proxy under test to CPU 1 and wrk + the upstream to CPU 0 (on a 2-core
#   machine: one core for the proxy, one for everything else). PIN=0: no pinning.
#   KEEP=1 keeps the work dir (configs, every wrk output) and prints its path.
#   HOLD=1 starts everything, prints the ports, gatehouse's pid, the token and an API key, then
#   waits (for perf: see benches/README.md).
#   ONLY=<extended regex>: only the throughput targets whose label matches, then the key flood
#   and the summary (no fixed-rate, user-API, RSS or login phases, so no oha); e.g. issue 26's
#   ONLY='pingora bare proxy|gatehouse required route' UNTUNED=0 (benches/README.md, "Issue 26").
#   FLOOD=0 skips the malformed-key flood (issue 26): ROUNDS interleaved rounds of random
#   malformed API keys against the required route beside requests without credentials, with
#   gatehouse's store-read and key-check counters read before and after each. FLOOD_LONG=0
#   leaves the 10 kB keys out of the flood.
#   GATEHOUSE_BIN / BARE_BIN: the binaries under test (default: this tree's release build);
#   SECOND_PROFILE (untuned): the cargo profile of the second pair, labelled "<profile> build:"
#   (issue 28: GATEHOUSE_BIN=target/pgo-use/release/gatehouse BARE_BIN=<benches/pgo/run.sh's>
#   SECOND_PROFILE=release sets the production build beside `cargo build --release`);
#   SECOND_LABEL names the second pair in the rows (e.g. "unpatched" for an A/B of two builds).
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PIN=${PIN:-1}
RSS_REQUESTS=${RSS_REQUESTS:-1000000}
LOGIN_CONNS=${LOGIN_CONNS:-200}
UNTUNED=${UNTUNED:-1}
WORK_STEALING=${WORK_STEALING:-true}
OTHER_RUNTIME=$([ "$WORK_STEALING" = true ] && echo false || echo true)
FIXED_SECONDS=${FIXED_SECONDS:-20}
ONLY=${ONLY:-}
FLOOD=${FLOOD:-1}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

# --- 1. tools -------------------------------------------------------------------------------
need wrk nginx haproxy curl jq taskset
[ -n "$ONLY" ] || need_oha
HAPROXY_VERSION=$(haproxy -v | awk 'NR == 1 {print $3}') # awk reads it all: no SIGPIPE under pipefail
case $HAPROXY_VERSION in
  1.* | 2.[0-5].*) echo "HAProxy $HAPROXY_VERSION has no jwt_verify (2.6+ needed)"; exit 1 ;;
esac

# The shipped build (profile `release`: fat LTO, one codegen unit) and, unless UNTUNED=0, the
# same code built as before issue 17 (profile `untuned`), so the floor before and after the
# profile change is measured in this run.
# SECOND_PROFILE=release (with GATEHOUSE_BIN and BARE_BIN the profile-guided pair: `make
# release` and benches/pgo/run.sh) sets the plain release build beside the production one
# instead, its rows labelled "release build:" (issue 28).
SECOND_PROFILE=${SECOND_PROFILE:-untuned}
SECOND=${SECOND_LABEL:-$([ "$SECOND_PROFILE" = untuned ] && echo "untuned build" || echo "$SECOND_PROFILE build")}
proxy_bins release ""
BARE=$BARE_BIN
GATEHOUSE=$GATEHOUSE_BIN
[ "$UNTUNED" = 1 ] && proxy_bins "$SECOND_PROFILE" UNTUNED_

# --- 2. processes ---------------------------------------------------------------------------
work_dir load

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  ON_PROXY_CPU="taskset -c 1"
  ON_LOAD_CPU="taskset -c 0"
else
  ON_PROXY_CPU=""
  ON_LOAD_CPU=""
fi

# start NAME CPU-PREFIX CMD...: runs CMD in the background, remembers its pid.
start() {
  local name=$1 prefix=$2
  shift 2
  # shellcheck disable=SC2086
  $prefix "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  eval "PID_$name=$!"
  disown $!
}


for v in UP NGX HAP BARE_PORT BARE_NS_PORT GH GHM GHL GHLM UBARE_PORT UGH UGHM; do free_port "$v"; done
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

upstream_nginx "$UP"
mkdir -p "$WORK/nginx/logs"
{
  nginx_head nginx
  nginx_proxy_http "$NGX" "$UP"
} >"$WORK/nginx/nginx.conf"
haproxy_jwt_cfg "$HAP" "$SECRET" "$UP"
gatehouse_conf() { # PORT METRICS_PORT NAME ACCESS_LOG HASH_QUEUE WORK_STEALING
  gatehouse_server "$3" "$1" "$2"
  cat <<EOF
work_stealing = $6
[jwt]
access_lifetime_seconds = 3600
[passwords]
# argon2 defaults (m=19456 KiB, t=2, p=1); the pool size is said explicitly because
# "one per CPU" would see only the one CPU the proxy is pinned to.
hash_threads = $(nproc)
hash_queue = $5
[log]
access_log = $4
level = "warn"
[web]
enabled = true
[[routes]]
prefix = "/pub/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
# Issue 27: the public route again with a local limit wrk never reaches, so every request pays
# the whole check and its answer carries both RateLimit fields.
[[routes]]
prefix = "/lim/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
rate_limit = { requests = 1000000, per_seconds = 1, by = "address" }
[[routes]]
prefix = "/"
upstreams = ["127.0.0.1:$UP"]
auth = "required"
EOF
}
gatehouse_conf "$GH" "$GHM" gatehouse false 256 "$WORK_STEALING" >"$WORK/gatehouse.toml"
gatehouse_conf "$UGH" "$UGHM" gatehouse_untuned false 256 true >"$WORK/gatehouse_untuned.toml"
gatehouse_conf "$GHL" "$GHLM" gatehouse_log true 64 "$WORK_STEALING" >"$WORK/gatehouse_log.toml"

say "starting upstream, nginx, haproxy, gatehouse on 127.0.0.1 (work dir $WORK)"
start upstream "$ON_LOAD_CPU" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
start nginx "$ON_PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
start haproxy "$ON_PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg"
# The floors: as gatehouse runs (its runtime flavour, no downstream modules), with the other
# runtime flavour, and, untuned, as Pingora is out of the box (work stealing, its default
# disabled compression module) in the build profile from before issue 17.
BARE_WORK_STEALING=$WORK_STEALING start bare "$ON_PROXY_CPU" "$BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP"
BARE_WORK_STEALING=$OTHER_RUNTIME \
  start bare_other_runtime "$ON_PROXY_CPU" "$BARE" "127.0.0.1:$BARE_NS_PORT" "127.0.0.1:$UP"
if [ "$UNTUNED" = 1 ]; then
  BARE_WORK_STEALING=true BARE_DEFAULT_MODULES=$([ "$SECOND_PROFILE" = untuned ] && echo 1 || echo 0) \
    start bare_untuned "$ON_PROXY_CPU" "$UNTUNED_BARE_BIN" "127.0.0.1:$UBARE_PORT" "127.0.0.1:$UP"
fi
export GATEHOUSE_JWT_SECRET=$SECRET
start gatehouse "$ON_PROXY_CPU" "$GATEHOUSE" serve -c "$WORK/gatehouse.toml"
start gatehouse_log "$ON_PROXY_CPU" "$GATEHOUSE" serve -c "$WORK/gatehouse_log.toml"
[ "$UNTUNED" = 1 ] && start gatehouse_untuned "$ON_PROXY_CPU" "$UNTUNED_GATEHOUSE_BIN" serve -c "$WORK/gatehouse_untuned.toml"
# shellcheck disable=SC2154 # assigned by start() through eval
GH_PID=$PID_gatehouse
# shellcheck disable=SC2154
GHL_PID=$PID_gatehouse_log
wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$NGX/"
wait_http "http://127.0.0.1:$HAP/" 401
wait_http "http://127.0.0.1:$BARE_PORT/"
wait_http "http://127.0.0.1:$BARE_NS_PORT/"
if [ "$UNTUNED" = 1 ]; then
  wait_http "http://127.0.0.1:$UBARE_PORT/"
  wait_http "http://127.0.0.1:$UGHM/readyz"
  # shellcheck disable=SC2154 # assigned by start() through eval
  UGH_PID=$PID_gatehouse_untuned
fi
wait_http "http://127.0.0.1:$GHM/readyz"
wait_http "http://127.0.0.1:$GHLM/readyz"
if [ -n "$ON_PROXY_CPU" ]; then
  # Pin every gatehouse thread to the proxy CPU, then let the argon2 pool use both: the
  # hashing threads are not the proxy's "one worker thread".
  for pid in "$GH_PID" "$GHL_PID" ${UGH_PID:-}; do
    taskset -a -p -c 1 "$pid" >/dev/null
    for t in /proc/"$pid"/task/*; do
      if grep -q '^gatehouse-hash' "$t/comm" 2>/dev/null; then taskset -p -c 0,1 "${t##*/}" >/dev/null; fi
    done
  done
fi

USERNAME=benchuser
PASSWORD='Bench-Pass-2026!'
H='Content-Type: application/json'
login() { # PORT -> access token
  curl -sf -XPOST "http://127.0.0.1:$1/api/auth/register/" -H "$H" \
    -d "{\"username\":\"$USERNAME\",\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" >/dev/null
  curl -sf -XPOST "http://127.0.0.1:$1/api/token/" -H "$H" \
    -d "{\"username\":\"$USERNAME\",\"password\":\"$PASSWORD\"}" | jq -r .access
}
TOKEN=$(login "$GH")
TOKEN_LOG=$(login "$GHL")
[ "$UNTUNED" = 1 ] && TOKEN_UNTUNED=$(login "$UGH")
AUTH="Authorization: Bearer $TOKEN"
# Issue 26: an API key of the same user, made through the API (the password again), presented
# as X-API-Key and as the bearer token on the same required route.
KEY=$(curl -sf -XPOST "http://127.0.0.1:$GH/api/auth/keys/" -H "$H" -H "$AUTH" \
  -d "{\"name\":\"bench\",\"expires_at\":\"$(date -u -d "+30 days" +%Y-%m-%dT%H:%M:%SZ)\",\"password\":\"$PASSWORD\"}" | jq -r .key)
case $KEY in gk_*) ;; *) echo "could not make an API key through POST /api/auth/keys/"; exit 1 ;; esac
KEY_HDR="X-API-Key: $KEY"
KEY_AUTH="Authorization: Bearer $KEY"
# Issue 22: a session of the same user, signed in as a browser does: the sign-in page (its CSRF
# cookie and the form's token), then the form with the page's Origin (302 + the session cookie).
JAR=$WORK/cookies.txt
CSRF_FIELD=$(curl -sf -c "$JAR" "http://127.0.0.1:$GH/accounts/login/" |
  grep -o 'name="csrfmiddlewaretoken" value="[^"]*"' | sed 's/.*value="//; s/"$//')
[ -n "$CSRF_FIELD" ] || { echo "GET /accounts/login/ gave no csrfmiddlewaretoken"; exit 1; }
curl -sf -o /dev/null -b "$JAR" -c "$JAR" -XPOST "http://127.0.0.1:$GH/accounts/login/" \
  -H "Origin: http://127.0.0.1:$GH" --data-urlencode "csrfmiddlewaretoken=$CSRF_FIELD" \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD"
SESSION=$(awk '$6 == "__Host-gatehouse_session" {print $7}' "$JAR")
[ -n "$SESSION" ] || { echo "POST /accounts/login/ set no session cookie"; exit 1; }
SESSION_HDR="Cookie: __Host-gatehouse_session=$SESSION"

check() { # LABEL EXPECTED URL [curl args]
  local label=$1 want=$2 url=$3
  shift 3
  got=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")
  if [ "$got" != "$want" ]; then echo "check failed: $label: $url answered $got, not $want"; exit 1; fi
}
check "haproxy with token" 200 "http://127.0.0.1:$HAP/" -H "$AUTH"
check "haproxy, bad signature" 401 "http://127.0.0.1:$HAP/" -H "Authorization: Bearer ${TOKEN%.*}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
check "gatehouse required, no token" 401 "http://127.0.0.1:$GH/x"
check "gatehouse required" 200 "http://127.0.0.1:$GH/x" -H "$AUTH"
check "gatehouse public" 200 "http://127.0.0.1:$GH/pub/x"
check "gatehouse profile" 200 "http://127.0.0.1:$GH/api/auth/profile/" -H "$AUTH"
check "gatehouse required, X-API-Key" 200 "http://127.0.0.1:$GH/x" -H "$KEY_HDR"
check "gatehouse required, Bearer key" 200 "http://127.0.0.1:$GH/x" -H "$KEY_AUTH"
check "gatehouse required, truncated key" 401 "http://127.0.0.1:$GH/x" -H "X-API-Key: ${KEY%?}"
check "gatehouse required, session cookie" 200 "http://127.0.0.1:$GH/x" -H "$SESSION_HDR"
OTHER_SESSION=${SESSION%?}$([ "${SESSION: -1}" = A ] && echo B || echo A) # one character changed
check "gatehouse required, unknown session" 401 "http://127.0.0.1:$GH/x" -H "Cookie: __Host-gatehouse_session=$OTHER_SESSION"
check "gatehouse rate-limited public route" 200 "http://127.0.0.1:$GH/lim/x"
curl -sf -D - -o /dev/null "http://127.0.0.1:$GH/lim/x" | grep -qi '^ratelimit-policy:' ||
  { echo "check failed: /lim/ answered without RateLimit-Policy"; exit 1; }
echo "all targets answer (haproxy and gatehouse refuse a bad token, gatehouse a bad key and session)"

if [ "${HOLD:-0}" = 1 ]; then
  # Profiling: keep everything up (at most an hour) and say where it is.
  {
    echo "UP=$UP NGX=$NGX HAP=$HAP GH=$GH GHL=$GHL GH_PID=$GH_PID"
    echo "TOKEN=$TOKEN"
    echo "KEY=$KEY"
  } >"$WORK/env"
  echo "HOLD=1: everything stays up for an hour or until Ctrl-C; ports, pid and token in $WORK/env"
  cat "$WORK/env"
  sleep 3600 &
  PIDS+=($!)
  wait $! || true
  exit 0
fi

# --- 3. measuring ---------------------------------------------------------------------------
RESULTS=$WORK/results.tsv
: >"$RESULTS"

to_ms() { # wrk latency ("812.00us", "1.20ms", "2.01s") -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# CPU time (clock ticks, user + system) of a started process and its children (nginx workers).
cpu_ticks() { # NAME
  local var="PID_$1" pid total=0
  for pid in ${!var} $(pgrep -P "${!var}" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
TICK=$(getconf CLK_TCK)

# wrk_run LABEL CONNS DURATION URL [wrk args...]: one wrk run, one line in $RESULTS. With
# CPU_OF=NAME, also the CPU time that process spent per request (user + system, microseconds).
wrk_run() {
  local label=$1 conns=$2 dur=$3 url=$4
  shift 4
  local out
  out=$WORK/wrk.$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).$RANDOM.txt
  local before=0 after=0
  [ -n "${CPU_OF:-}" ] && before=$(cpu_ticks "$CPU_OF")
  # shellcheck disable=SC2086
  $ON_LOAD_CPU wrk --latency -t "$THREADS" -c "$conns" -d "${dur}s" "$@" "$url" >"$out" 2>&1
  [ -n "${CPU_OF:-}" ] && after=$(cpu_ticks "$CPU_OF")
  local rps p99 non2xx reqs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  reqs=$(awk '/requests in/ {print $1}' "$out")
  cpu=$(awk -v t=$((after - before)) -v n="${reqs:-0}" -v hz="$TICK" 'BEGIN { if (n > 0 && t > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "${rps:-0}" "$p99" "${non2xx:-0}" "${reqs:-0}" "$cpu" >>"$RESULTS"
  printf '  %-44s %10s req/s  p99 %8s ms  non-2xx %-7s CPU %s us/req\n' "$label" "${rps:-0}" "$p99" "${non2xx:-0}" "$cpu"
}

median() { # LABEL COLUMN -> median of that column over the label's rows
  awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$RESULTS" | sort -g |
    awk '{a[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

TARGETS=(
  "upstream direct|http://127.0.0.1:$UP/x||upstream"
  "nginx plain proxy|http://127.0.0.1:$NGX/x||nginx"
  "haproxy jwt_verify|http://127.0.0.1:$HAP/x|$AUTH|haproxy"
  "pingora bare proxy|http://127.0.0.1:$BARE_PORT/x||bare"
  "gatehouse public route|http://127.0.0.1:$GH/pub/x||gatehouse"
  "gatehouse public route, with the token|http://127.0.0.1:$GH/pub/x|$AUTH|gatehouse"
  "gatehouse required route|http://127.0.0.1:$GH/x|$AUTH|gatehouse"
  "gatehouse required route, X-API-Key|http://127.0.0.1:$GH/x|$KEY_HDR|gatehouse"
  "gatehouse required route, Bearer key|http://127.0.0.1:$GH/x|$KEY_AUTH|gatehouse"
  "gatehouse required route, session cookie|http://127.0.0.1:$GH/x|$SESSION_HDR|gatehouse"
  "gatehouse public route, rate-limited|http://127.0.0.1:$GH/lim/x||gatehouse"
  "gatehouse required, access log on|http://127.0.0.1:$GHL/x|Authorization: Bearer $TOKEN_LOG|gatehouse_log"
  "pingora bare proxy, work_stealing = $OTHER_RUNTIME|http://127.0.0.1:$BARE_NS_PORT/x||bare_other_runtime"
)
if [ "$UNTUNED" = 1 ]; then
  TARGETS+=(
    "$SECOND: pingora bare proxy|http://127.0.0.1:$UBARE_PORT/x||bare_untuned"
    "$SECOND: gatehouse public route|http://127.0.0.1:$UGH/pub/x||gatehouse_untuned"
    "$SECOND: gatehouse required route|http://127.0.0.1:$UGH/x|Authorization: Bearer $TOKEN_UNTUNED|gatehouse_untuned"
  )
fi
if [ -n "$ONLY" ]; then
  kept=()
  for t in "${TARGETS[@]}"; do
    if grep -Eq -- "$ONLY" <<<"${t%%|*}"; then kept+=("$t"); fi
  done
  ((${#kept[@]})) || { echo "ONLY='$ONLY' matches no target"; exit 1; }
  TARGETS=("${kept[@]}")
fi
say "proxy throughput: wrk -t $THREADS -c $CONNS -d ${DURATION}s, $ROUNDS interleaved rounds (pinning: ${ON_PROXY_CPU:-none})"
for round in $(seq "$ROUNDS"); do
  echo " round $round"
  n=${#TARGETS[@]}
  for i in $(seq 0 $((n - 1))); do
    # Each round starts one target later, so no target always runs first (or last).
    IFS='|' read -r label url header CPU_OF <<<"${TARGETS[$(((i + round - 1) % n))]}"
    if [ -n "$header" ]; then
      wrk_run "$label" "$CONNS" "$DURATION" "$url" -H "$header"
    else
      wrk_run "$label" "$CONNS" "$DURATION" "$url"
    fi
  done
done

# The full run only (ONLY= runs just the chosen throughput targets and the key flood).
if [ -z "$ONLY" ]; then
  # Latency at a fixed rate, not at saturation: oha sends FIXED_RATE requests a second (half of
  # HAProxy's median maximum above) from CONNS connections whether or not answers are late
  # (latency correction: a late answer delays no later request's clock), FIXED_SECONDS each,
  # ROUNDS interleaved rounds.
  # A second rate, half of gatehouse's own maximum, shows the latencies where gatehouse is not
  # saturated when HAProxy's half is beyond gatehouse's maximum.
  FIXED_RATE=${FIXED_RATE:-$(awk -v r="$(median "haproxy jwt_verify" 2)" 'BEGIN { printf "%d", r / 2 }')}
  FIXED_RATE_LOW=${FIXED_RATE_LOW:-$(awk -v r="$(median "gatehouse required route" 2)" 'BEGIN { printf "%d", r / 2 }')}
  FIXED_TARGETS=(
    "fixed rate: haproxy jwt_verify|http://127.0.0.1:$HAP/x|$AUTH|$FIXED_RATE"
    "fixed rate: gatehouse required route|http://127.0.0.1:$GH/x|$AUTH|$FIXED_RATE"
    "fixed rate: nginx plain proxy|http://127.0.0.1:$NGX/x||$FIXED_RATE"
    "half gatehouse's rate: haproxy jwt_verify|http://127.0.0.1:$HAP/x|$AUTH|$FIXED_RATE_LOW"
    "half gatehouse's rate: gatehouse required route|http://127.0.0.1:$GH/x|$AUTH|$FIXED_RATE_LOW"
  )
  oha_run() { # LABEL URL HEADER RATE: one line in $RESULTS (req/s, p99 ms, non-2xx or failed, requests)
    local out
    out=$WORK/oha.$(echo "$1" | tr -c 'a-zA-Z0-9\n' _).$RANDOM.json
    local extra=()
    [ -n "$3" ] && extra=(-H "$3")
    # shellcheck disable=SC2086
    $ON_LOAD_CPU oha --no-tui --output-format json -z "${FIXED_SECONDS}s" -q "$4" \
      --latency-correction -c "$CONNS" "${extra[@]}" "$2" >"$out" 2>"$out.err" ||
      { echo "oha failed:"; cat "$out.err"; exit 1; }
    local rps p99 ok all
    rps=$(jq -r '.summary.requestsPerSec' "$out")
    p99=$(jq -r '.latencyPercentiles.p99 * 1000' "$out")
    ok=$(jq -r '.statusCodeDistribution["200"] // 0' "$out")
    all=$(jq -r '([.statusCodeDistribution[]] | add // 0) + ([.errorDistribution[]] | add // 0)' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t-\n' "$1" "$rps" "$p99" "$((all - ok))" "$all" >>"$RESULTS"
    printf '  %-44s %10.0f req/s  p99 %8.3f ms  non-2xx or failed %s\n' "$1" "$rps" "$p99" "$((all - ok))"
  }
  say "latency at a fixed rate: oha -q $FIXED_RATE (half of HAProxy's maximum) and -q $FIXED_RATE_LOW (half of gatehouse's), -c $CONNS -z ${FIXED_SECONDS}s, $ROUNDS interleaved rounds"
  for round in $(seq "$ROUNDS"); do
    echo " round $round"
    n=${#FIXED_TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do
      IFS='|' read -r label url header rate <<<"${FIXED_TARGETS[$(((i + round - 1) % n))]}"
      oha_run "$label" "$url" "$header" "$rate"
    done
  done

  CPU_OF=gatehouse
  say "user API under load (gatehouse, wrk -c $CONNS -d ${DURATION}s)"
  cat >"$WORK/login.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"username":"$USERNAME","password":"$PASSWORD"}'
wrk.headers["Content-Type"] = "application/json"
EOF
  wrk_run "GET /api/auth/profile/" "$CONNS" "$DURATION" "http://127.0.0.1:$GH/api/auth/profile/" -H "$AUTH"
  wrk_run "POST /api/token/" "$CONNS" "$DURATION" "http://127.0.0.1:$GH/api/token/" -s "$WORK/login.lua"

  say "RSS of gatehouse across proxied requests (required route)"
  rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GH_PID/status"; }
  hwm() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$GH_PID/status"; }
  served() { awk -F'\t' '$1 ~ /^rss/ {s += $5} END {print s + 0}' "$RESULTS"; }
  RSS_LINES=("before: RSS $(rss) MiB (peak so far $(hwm) MiB)")
  echo "  ${RSS_LINES[0]}"
  for step in 1 2; do
    goal=$((RSS_REQUESTS * step))
    for _ in $(seq 30); do # bounded: at most 30 x 10 s per step
      [ "$(served)" -ge "$goal" ] && break
      wrk_run "rss step $step" "$CONNS" 10 "http://127.0.0.1:$GH/x" -H "$AUTH" >/dev/null
    done
    RSS_LINES+=("after $(served) proxied requests: RSS $(rss) MiB (peak $(hwm) MiB)")
    echo "  ${RSS_LINES[-1]}"
  done

  # login_phase NAME PORT METRICS_PORT TOKEN TAG: idle proxied p99, then the same while
  # LOGIN_CONNS connections post logins.
  login_phase() {
    local name=$1 port=$2 mport=$3 token=$4 tag=$5
    CPU_OF=$name
    wrk_run "idle: required route$tag" "$CONNS" "$DURATION" "http://127.0.0.1:$port/x" -H "Authorization: Bearer $token"
    THREADS=1 CPU_OF="" wrk_run "logins (c=$LOGIN_CONNS)$tag" "$LOGIN_CONNS" $((DURATION + 4)) \
      "http://127.0.0.1:$port/api/token/" -s "$WORK/login.lua" --timeout 10s &
    local login_wrk=$!
    sleep 2
    wrk_run "during logins: required route$tag" "$CONNS" "$DURATION" "http://127.0.0.1:$port/x" -H "Authorization: Bearer $token"
    wait "$login_wrk"
    echo "  token-endpoint answers since start, by status (its /metrics):"
    curl -s "http://127.0.0.1:$mport/metrics" | grep '^gatehouse_http_requests_total{' | grep -i 'token' |
      sed -e 's/^gatehouse_http_requests_total/    /'
  }
  say "proxied p99 during $LOGIN_CONNS concurrent logins (wrk retries at once on 503: it ignores Retry-After)"
  echo " a) gatehouse with the default hash_queue = 256: all $LOGIN_CONNS wait for argon2, no 503 flood"
  login_phase gatehouse "$GH" "$GHM" "$TOKEN" ""
  echo " b) the second gatehouse (access log on) with hash_queue = 64: most of the $LOGIN_CONNS get 503 at once and retry"
  login_phase gatehouse_log "$GHL" "$GHLM" "$TOKEN_LOG" ", queue 64, log on"
  RSS_LINES+=("after the login runs (argon2 arenas): RSS $(rss) MiB (peak $(hwm) MiB)")
  echo "  ${RSS_LINES[-1]}"
fi

# Issue 26: a flood of malformed API keys costs no store reads. wrk sends random malformed keys
# (benches/load/flood.lua: random base62 of other lengths, right-length keys with a wrong
# checksum, the real key with one character flipped or cut short, 10 kB keys, the JWT in
# X-API-Key, flipped keys as `Bearer gk_...` and as Basic's password) to the required route,
# beside the same route without credentials (a plain 401), ROUNDS interleaved rounds. Before
# and after each run gatehouse's /metrics is read: the store reads (key-cache and user-cache
# misses and bypasses, as tests/it/apikey_routes.rs counts them) must not move, and
# `gatehouse_apikey_checks_total{result="malformed"}` must grow by the 401s gatehouse answered
# (wrk's own count leaves out the at most CONNS requests still in flight when it stops).
if [ "$FLOOD" = 1 ]; then
  scrape() { curl -sf "http://127.0.0.1:$GHM/metrics"; }
  # sum_of METRICS REGEX: the sum of the samples whose line matches REGEX (braces as [{] [}]:
  # awk -v would read \{ as an escape).
  sum_of() { awk -v re="$2" '$0 ~ re {s += $NF} END {printf "%d", s}' <<<"$1"; }
  store_reads() {
    sum_of "$1" '^gatehouse_(apikey|user)_cache_requests_total[{]result="(miss|bypass)"[}]'
  }
  flipped() { # KEY -> the key with one character after `gk_` changed to another base62 one
    local alphabet=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz
    local pos=$((3 + RANDOM % (${#1} - 3)))
    local before=${alphabet%%"${1:pos:1}"*}
    printf '%s%s%s' "${1:0:pos}" "${alphabet:$(((${#before} + 1 + RANDOM % 61) % 62)):1}" "${1:pos+1}"
  }
  BASICS=""
  for _ in $(seq 16); do
    BASICS+="  \"Basic $(printf 'ci:%s' "$(flipped "$KEY")" | base64 -w0)\","$'\n'
  done
  sed -e "s|@KEY@|$KEY|" -e "s|@JWT@|$TOKEN|" "$ROOT/benches/load/flood.lua" |
    awk -v basics="$BASICS" '{ if ($0 == "@BASICS@") printf "%s", basics; else print }' >"$WORK/flood.lua"
  if ! wrk -t 1 -c 1 -d 1s -s "$WORK/flood.lua" "http://127.0.0.1:$GH/x" >"$WORK/flood.check" 2>&1 ||
    grep -q 'flood.lua' "$WORK/flood.check"; then
    echo "wrk did not load $WORK/flood.lua:"
    cat "$WORK/flood.check"
    exit 1
  fi
  FLOOD_ROWS=$WORK/flood.tsv
  : >"$FLOOD_ROWS"
  export FLOOD_LONG=${FLOOD_LONG:-1}
  # flood_run LABEL [wrk args]: one wrk run on the required route, and what the counters did.
  flood_run() {
    local label=$1 m0 m1
    shift
    m0=$(scrape)
    CPU_OF=gatehouse wrk_run "$label" "$CONNS" "$DURATION" "http://127.0.0.1:$GH/x" "$@"
    m1=$(scrape)
    local answered malformed other reads0 reads1
    answered=$(($(sum_of "$m1" '^gatehouse_http_requests_total[{].*status="401"') - $(sum_of "$m0" '^gatehouse_http_requests_total[{].*status="401"')))
    malformed=$(($(sum_of "$m1" '^gatehouse_apikey_checks_total[{]result="malformed"[}]') - $(sum_of "$m0" '^gatehouse_apikey_checks_total[{]result="malformed"[}]')))
    other=$(($(sum_of "$m1" '^gatehouse_apikey_checks_total[{]result="[a-z_]+"[}]') - $(sum_of "$m0" '^gatehouse_apikey_checks_total[{]result="[a-z_]+"[}]') - malformed))
    reads0=$(store_reads "$m0")
    reads1=$(store_reads "$m1")
    local wrk_reqs
    wrk_reqs=$(awk -F'\t' -v l="$label" '$1 == l {r = $5} END {print r + 0}' "$RESULTS")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$wrk_reqs" "$answered" "$malformed" "$other" "$reads0" "$reads1" >>"$FLOOD_ROWS"
    printf '    401s answered %s (wrk counted %s), malformed keys %s, other key results %s, store reads %s -> %s\n' \
      "$answered" "$wrk_reqs" "$malformed" "$other" "$reads0" "$reads1"
  }
  FLOOD_TARGETS=("flood: malformed keys|-s|$WORK/flood.lua" "refused: no credentials||")
  say "malformed-key flood: wrk -t $THREADS -c $CONNS -d ${DURATION}s on the required route, $ROUNDS interleaved rounds"
  for round in $(seq "$ROUNDS"); do
    echo " round $round"
    for i in 0 1; do
      IFS='|' read -r label flag script <<<"${FLOOD_TARGETS[$(((i + round - 1) % 2))]}"
      if [ -n "$flag" ]; then flood_run "$label" "$flag" "$script"; else flood_run "$label"; fi
    done
  done
fi

# --- 4. summary -----------------------------------------------------------------------------
has_rows() { awk -F'\t' -v l="$1" '$1 == l {found = 1} END {exit !found}' "$RESULTS"; }
say "summary (median of $ROUNDS rounds; wrk -t $THREADS -c $CONNS -d ${DURATION}s; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
printf '| %-50s | %10s | %9s | %8s | %14s |\n' "target" "req/s" "p99 ms" "non-2xx" "CPU us/req"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..16})"
for label in "upstream direct" "nginx plain proxy" "haproxy jwt_verify" "pingora bare proxy" "gatehouse public route" \
  "gatehouse public route, with the token" \
  "gatehouse required route" "gatehouse required route, X-API-Key" "gatehouse required route, Bearer key" \
  "gatehouse required route, session cookie" "gatehouse public route, rate-limited" \
  "gatehouse required, access log on" "pingora bare proxy, work_stealing = $OTHER_RUNTIME" \
  "$SECOND: pingora bare proxy" "$SECOND: gatehouse public route" "$SECOND: gatehouse required route" \
  "fixed rate: haproxy jwt_verify" "fixed rate: gatehouse required route" "fixed rate: nginx plain proxy" \
  "half gatehouse's rate: haproxy jwt_verify" "half gatehouse's rate: gatehouse required route" \
  "GET /api/auth/profile/" "POST /api/token/" \
  "idle: required route" "during logins: required route" "logins (c=$LOGIN_CONNS)" \
  "idle: required route, queue 64, log on" "during logins: required route, queue 64, log on" \
  "logins (c=$LOGIN_CONNS), queue 64, log on" "flood: malformed keys" "refused: no credentials"; do
  # Targets left out (ONLY=, UNTUNED=0, FLOOD=0) have no row.
  has_rows "$label" || continue
  printf '| %-50s | %10.0f | %9.2f | %8s | %14s |\n' "$label" "$(median "$label" 2)" "$(median "$label" 3)" "$(median "$label" 4)" "$(median "$label" 6)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
cpu_of() { median "$1" 6; }
# nth LABEL COLUMN N: the column of the label's Nth row (round N: the rounds are interleaved).
nth() { awk -F'\t' -v l="$1" -v c="$2" -v n="$3" '$1 == l && ++i == n {print $c}' "$RESULTS"; }
echo
# pair_ratio LABEL BASE TARGET NOTE: LABEL's CPU per request over BASE's, medians and by round.
pair_ratio() {
  has_rows "$1" && has_rows "$2" || return 0
  local per_round="" r
  for r in $(seq "$ROUNDS"); do
    per_round+=" $(ratio "$(nth "$1" 6 "$r")" "$(nth "$2" 6 "$r")")"
  done
  echo "  $1 / $2 = $(ratio "$(cpu_of "$1")" "$(cpu_of "$2")") (medians; by round:$per_round)   (target <= $3)"
}
echo "ratios (CPU per request, each credential or check against its base in the same rounds):"
pair_ratio "gatehouse required route, X-API-Key" "gatehouse required route" 1.05 # issue 26
pair_ratio "gatehouse required route, Bearer key" "gatehouse required route" 1.05 # issue 26
pair_ratio "gatehouse required route, session cookie" "gatehouse required route" 1.05 # issue 22
pair_ratio "gatehouse public route, rate-limited" "gatehouse public route" 1.03 # issue 27
if [ "$FLOOD" = 1 ]; then
  per_round=""
  for r in $(seq "$ROUNDS"); do
    per_round+=" $(ratio "$(nth "flood: malformed keys" 6 "$r")" "$(nth "refused: no credentials" 6 "$r")")"
  done
  echo "  malformed-key flood / no credentials = $(ratio "$(cpu_of "flood: malformed keys")" "$(cpu_of "refused: no credentials")") CPU per refused request (medians; by round:$per_round), $(ratio "$(median "flood: malformed keys" 2)" "$(median "refused: no credentials" 2)") req/s"
  echo "the flood's counters, each run (store reads: key-cache and user-cache misses and bypasses; target: no change, and malformed = 401s answered):"
  printf '  %-26s %10s %12s %12s %10s %16s\n' "run" "wrk count" "401 answered" "malformed" "other keys" "store reads"
  while IFS=$'\t' read -r label reqs answered malformed other r0 r1; do
    printf '  %-26s %10s %12s %12s %10s %16s\n' "$label" "$reqs" "$answered" "$malformed" "$other" "$r0 -> $r1"
  done <"$FLOOD_ROWS"
  awk -F'\t' '$1 == "flood: malformed keys" && ($3 != $4 || $5 != 0 || $6 != $7) {bad = 1}
    $1 != "flood: malformed keys" && ($4 != 0 || $6 != $7) {bad = 1}
    END { print (bad ? "  FLOOD TARGET MISSED: see the rows above" : "  flood target met: no store read, every refusal counted as malformed") }' "$FLOOD_ROWS"
fi
if [ -z "$ONLY" ]; then
  REQ=$(median "gatehouse required route" 2)
  echo
  echo "ratios (req/s):"
  echo "  required / public  = $(ratio "$REQ" "$(median "gatehouse public route" 2)")   (target >= 0.95; the public requests carry no Authorization header)"
  echo "  required / public, same request = $(ratio "$REQ" "$(median "gatehouse public route, with the token" 2)")   (target >= 0.95; identical requests, only the auth check differs)"
  echo "  required / nginx   = $(ratio "$REQ" "$(median "nginx plain proxy" 2)")   (target >= 1.0)"
  echo "  required / haproxy = $(ratio "$REQ" "$(median "haproxy jwt_verify" 2)")   (target >= 1.5)"
  echo "  required / bare pingora = $(ratio "$REQ" "$(median "pingora bare proxy" 2)")   (Pingora's own ceiling: 1.0)"
  echo "  bare pingora / nginx = $(ratio "$(median "pingora bare proxy" 2)" "$(median "nginx plain proxy" 2)")"
  echo "ratios (CPU per request; issue 17's targets):"
  echo "  required / bare pingora = $(ratio "$(cpu_of "gatehouse required route")" "$(cpu_of "pingora bare proxy")")   (issue 17: <= 1.10; issue 28: <= 1.3 with both built the same way, the production build)"
  echo "  public / bare pingora   = $(ratio "$(cpu_of "gatehouse public route")" "$(cpu_of "pingora bare proxy")")   (target <= 1.05)"
  echo "  haproxy / required      = $(ratio "$(cpu_of "haproxy jwt_verify")" "$(cpu_of "gatehouse required route")")   (requests per CPU against HAProxy's; issue 28's target: >= 1.0 for the production (PGO) build, >= 0.55 for cargo build --release)"
  echo "  bare pingora, work_stealing = $OTHER_RUNTIME / = $WORK_STEALING: $(ratio "$(cpu_of "pingora bare proxy, work_stealing = $OTHER_RUNTIME")" "$(cpu_of "pingora bare proxy")")"
  if [ "$UNTUNED" = 1 ]; then
    echo "  floor, first build / $SECOND  = $(ratio "$(cpu_of "pingora bare proxy")" "$(cpu_of "$SECOND: pingora bare proxy")")   (issue 17, against the untuned build: <= 0.85)"
    echo "  required, first build / $SECOND = $(ratio "$(cpu_of "gatehouse required route")" "$(cpu_of "$SECOND: gatehouse required route")")   (gatehouse benefiting the same)"
    echo "  public, first build / $SECOND = $(ratio "$(cpu_of "gatehouse public route")" "$(cpu_of "$SECOND: gatehouse public route")")"
    echo "  $SECOND: required / bare pingora = $(ratio "$(cpu_of "$SECOND: gatehouse required route")" "$(cpu_of "$SECOND: pingora bare proxy")")"
    echo "  $SECOND: haproxy / required = $(ratio "$(cpu_of "haproxy jwt_verify")" "$(cpu_of "$SECOND: gatehouse required route")")   (requests per CPU against HAProxy's; issue 28, cargo build --release: >= 0.55)"
  fi
  echo "  fixed-rate p99, required / haproxy = $(ratio "$(median "fixed rate: gatehouse required route" 3)" "$(median "fixed rate: haproxy jwt_verify" 3)")   (at $FIXED_RATE req/s, half HAProxy's maximum; target <= 1.2)"
  echo "  fixed-rate p99, required / haproxy = $(ratio "$(median "half gatehouse's rate: gatehouse required route" 3)" "$(median "half gatehouse's rate: haproxy jwt_verify" 3)")   (at $FIXED_RATE_LOW req/s, half gatehouse's maximum; issue 28's target <= 1.0)"
  echo "ratios (p99):"
  echo "  required / haproxy = $(ratio "$(median "gatehouse required route" 3)" "$(median "haproxy jwt_verify" 3)")   (target <= 1.0)"
  echo "  during logins / idle = $(ratio "$(median "during logins: required route" 3)" "$(median "idle: required route" 3)")   (target < 2.0)"
  echo "  during logins / idle, queue 64 = $(ratio "$(median "during logins: required route, queue 64, log on" 3)" "$(median "idle: required route, queue 64, log on" 3)")   (the flood a too-small queue invites)"
  echo "RSS (target <= 25 MiB after 1M proxied requests, no growth):"
  for line in "${RSS_LINES[@]}"; do echo "  $line"; done
fi
cp "$RESULTS" "${RESULTS_COPY:-/tmp/gatehouse-load-results.tsv}"
echo "raw rows: ${RESULTS_COPY:-/tmp/gatehouse-load-results.tsv}"
