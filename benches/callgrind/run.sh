#!/usr/bin/env bash
# Instructions per request, one command: `bash benches/callgrind/run.sh` from the repository root.
#
# Instruction counts under valgrind are repeatable whatever else the machine runs (wall-clock
# and req/s are not), so this is the figure to compare two builds with. For each target the
# proxy runs under `valgrind --tool=callgrind`; after a warm-up the counters are zeroed
# (`callgrind_control -z`), wrk sends exactly REQUESTS requests (a Lua counter stops it), the
# counters are dumped (`callgrind_control -d`) and the dump's total Ir is divided by the number
# of requests wrk reports. User space only: the kernel's loopback TCP is not counted.
#
# Targets (all on 127.0.0.1, free ports, a temp dir; every process stopped on exit):
#   bare           benches/bare_pingora.rs, a Pingora ProxyHttp that only forwards: the floor
#   public         gatehouse, route /pub/ (auth = "public"), no Authorization header
#   public_token   the same route with the Authorization header of the required route
#   required       gatehouse, route / (auth = "required"), a valid access token
#   key            the same route with an API key of the same user in X-API-Key (issue 26;
#                  the key made through POST /api/auth/keys/, key and owner cached)
#   key_bearer     the same key as `Authorization: Bearer gk_...`
#   profile        GET /api/auth/profile/ with that token (answered locally, no upstream)
#   nginx          the peers, for scale (not in the default TARGETS): nginx as a plain proxy
#   haproxy        (one process, `master_process off`) and HAProxy with `jwt_verify` of an
#                  HS256 token (`nbthread 1`), with the load benchmark's configs
# gatehouse: `[server] threads = 1`, argon2 at 64 KiB (the login before the measurement is
# quick under valgrind; no hashing happens while counting), access log off. The upstream is
# nginx (1 worker, `return 200`), not under valgrind.
#
# Knobs (environment):
#   GATEHOUSE_BIN  the gatehouse binary (default: this tree's, built with PROFILE)
#   BARE_BIN       the bare Pingora binary (default: this tree's benches/bare_pingora.rs, built)
#   PROFILE=release  the cargo profile to build them with (`untuned`: the one before issue 17)
#   TARGETS="bare public public_token required profile"   which targets, in this order
#                  (add `key key_bearer` for issue 26's API keys, `limited` for issue 27's
#                  rate limit: /lim/, the public route with a local limit never reached;
#                  `pg_public pg_shared` for its shared limit: a second gatehouse on a
#                  throwaway PostgreSQL cluster, `store.replicas = 2`, /pub/ against /shr/,
#                  the same route with the limit `rate_limit_shared`, never reached)
#   REQUESTS=5000  requests counted per measurement   WARMUP=2000  requests before zeroing
#   CONNS=4        wrk connections (wrk -t 1)          ROUNDS=1     measurements per target
#   MAX_SECONDS=300  bound on each wrk run             KEEP=1       keep the work dir (dumps,
#                                                                   for callgrind_annotate)
#   RESULTS_COPY=/tmp/gatehouse-callgrind-results.tsv  raw rows: target, round, Ir, requests, Ir/req
set -euo pipefail

REQUESTS=${REQUESTS:-5000}
WARMUP=${WARMUP:-2000}
CONNS=${CONNS:-4}
ROUNDS=${ROUNDS:-1}
MAX_SECONDS=${MAX_SECONDS:-300}
TARGETS=${TARGETS:-bare public public_token required profile}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

need wrk nginx curl jq valgrind

# --- 1. binaries ----------------------------------------------------------------------------
# What is not given is built (a no-op when the build is fresh), as benches/load/run.sh does.
proxy_bins "${PROFILE:-release}" ""
echo "gatehouse: $GATEHOUSE_BIN"
# shellcheck disable=SC2153 # set by proxy_bins
echo "bare:      $BARE_BIN"

# --- 2. upstream ----------------------------------------------------------------------------
work_dir callgrind
for v in UP BARE_PORT GH GHM NGX HAP; do free_port "$v"; done

# start NAME CMD...: runs CMD in the background (output in the work dir), remembers its pid.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  LAST_PID=$!
  disown "$LAST_PID"
}
# stop PID: SIGINT, SIGKILL after 10 s (the trap's cleanup does the same for what is left).
stop() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

upstream_nginx "$UP"
start upstream nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
wait_http "http://127.0.0.1:$UP/"

# wrk stops its thread after exactly N responses and leaves a marker; we then interrupt wrk,
# which prints its totals at once instead of sleeping out -d.
cat >"$WORK/count.lua" <<'EOF'
local n = tonumber(os.getenv("WRK_REQUESTS"))
local marker = os.getenv("WRK_DONE")
local done = 0
function response(status, headers, body)
  done = done + 1
  if done == n then
    wrk.thread:stop()
    io.open(marker, "w"):close()
  end
end
EOF

# send N OUT URL [wrk args]: exactly N requests on CONNS connections (bounded by MAX_SECONDS).
send() {
  local n=$1 out=$2 url=$3
  shift 3
  local marker=$out.done
  rm -f "$marker"
  WRK_REQUESTS=$n WRK_DONE=$marker wrk -t 1 -c "$CONNS" -d "${MAX_SECONDS}s" --timeout 30s \
    -s "$WORK/count.lua" "$@" "$url" >"$out" 2>&1 &
  local wrk_pid=$!
  for _ in $(seq $((MAX_SECONDS * 10))); do
    [ -e "$marker" ] && break
    kill -0 "$wrk_pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 0.2
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || true
  if grep -q 'Non-2xx' "$out"; then
    echo "non-2xx answers from $url:"
    cat "$out"
    exit 1
  fi
}

# dump_total PID PREFIX: dumps the counters, prints the new dump's total Ir.
dump_total() {
  local pid=$1 prefix=$2 before after f
  before=$(find "$WORK" -maxdepth 1 -name "$prefix.*" | wc -l)
  callgrind_control -d "$pid" >/dev/null 2>&1 || { echo "callgrind_control -d $pid failed"; exit 1; }
  for _ in $(seq 300); do
    after=$(find "$WORK" -maxdepth 1 -name "$prefix.*" | wc -l)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  # The newest dump (callgrind numbers them PREFIX.PID.1, .2, ...).
  f=$(find "$WORK" -maxdepth 1 -name "$prefix.*" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
  sleep 0.5 # written at once, but let the file be complete
  # "summary:" is the dump's total (what callgrind_annotate calls PROGRAM TOTALS).
  awk '/^summary:/ {print $2; exit}' "$f"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# measure PID PREFIX TARGET URL [wrk args]: warm up, zero, count REQUESTS, dump; ROUNDS times.
measure() {
  local pid=$1 prefix=$2 target=$3 url=$4
  shift 4
  local round ir reqs
  echo " $target: $url"
  send "$WARMUP" "$WORK/warmup.$target.txt" "$url" "$@"
  for round in $(seq "$ROUNDS"); do
    callgrind_control -z "$pid" >/dev/null 2>&1 || { echo "callgrind_control -z $pid failed"; exit 1; }
    send "$REQUESTS" "$WORK/wrk.$target.$round.txt" "$url" "$@"
    ir=$(dump_total "$pid" "$prefix")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.$target.$round.txt")
    if [ -z "$ir" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
      echo "no figure for $target (Ir '$ir', requests '$reqs')"
      exit 1
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$round" "$ir" "$reqs" "$((ir / reqs))" >>"$RESULTS"
    printf '   round %s: %s Ir / %s requests = %s Ir/request\n' "$round" "$ir" "$reqs" "$((ir / reqs))"
  done
}

# proxy_routes PREFIX SHARED: the log settings, the public route /pub/, and the same route
# under PREFIX with a rate limit it never reaches (`rate_limit_shared = SHARED`).
proxy_routes() {
  cat <<EOF
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/pub/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
[[routes]]
prefix = "$1"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
rate_limit = { requests = 1000000, per_seconds = 1, by = "address" }
rate_limit_shared = $2
EOF
}

VALGRIND=(valgrind --tool=callgrind --vgdb=yes)
wants() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- 3. bare Pingora ------------------------------------------------------------------------
if wants bare; then
  say "bare Pingora under callgrind"
  start bare "${VALGRIND[@]}" --callgrind-out-file="$WORK/bare.cg.%p" \
    "$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP"
  BARE_PID=$LAST_PID
  wait_http "http://127.0.0.1:$BARE_PORT/" 200 1200
  measure "$BARE_PID" "bare.cg.$BARE_PID" bare "http://127.0.0.1:$BARE_PORT/x"
  stop "$BARE_PID"
fi

# --- 4. gatehouse ---------------------------------------------------------------------------
if wants public || wants limited || wants public_token || wants required || wants profile || wants key || wants key_bearer; then
  say "gatehouse under callgrind"
  {
    gatehouse_server gatehouse "$GH" "$GHM"
    cat <<EOF
[jwt]
access_lifetime_seconds = 3600
[passwords]
# 64 KiB instead of 19 MiB: the one login before the measurement is quick under valgrind.
argon2_memory_kib = 64
hash_threads = 1
EOF
    proxy_routes /lim/ false
    cat <<EOF
[[routes]]
prefix = "/"
upstreams = ["127.0.0.1:$UP"]
auth = "required"
EOF
  } >"$WORK/gatehouse.toml"
  start gatehouse "${VALGRIND[@]}" --callgrind-out-file="$WORK/gatehouse.cg.%p" \
    "$GATEHOUSE_BIN" serve -c "$WORK/gatehouse.toml"
  GH_PID=$LAST_PID
  wait_http "http://127.0.0.1:$GHM/readyz" 200 1200

  H='Content-Type: application/json'
  curl -sf --max-time 120 -XPOST "http://127.0.0.1:$GH/api/auth/register/" -H "$H" \
    -d '{"username":"benchuser","email":"bench@example.com","password":"Bench-Pass-2026!"}' >/dev/null
  TOKEN=$(curl -sf --max-time 120 -XPOST "http://127.0.0.1:$GH/api/token/" -H "$H" \
    -d '{"username":"benchuser","password":"Bench-Pass-2026!"}' | jq -r .access)
  AUTH="Authorization: Bearer $TOKEN"
  check() { # EXPECTED URL [curl args]
    local want=$1 url=$2 got
    shift 2
    got=$(curl -s --max-time 60 -o /dev/null -w '%{http_code}' "$@" "$url")
    [ "$got" = "$want" ] || { echo "check failed: $url answered $got, not $want"; exit 1; }
  }
  check 401 "http://127.0.0.1:$GH/x"
  check 200 "http://127.0.0.1:$GH/x" -H "$AUTH"
  check 200 "http://127.0.0.1:$GH/pub/x"
  check 200 "http://127.0.0.1:$GH/api/auth/profile/" -H "$AUTH"
  if wants key || wants key_bearer; then
    KEY=$(curl -sf --max-time 120 -XPOST "http://127.0.0.1:$GH/api/auth/keys/" -H "$H" -H "$AUTH" \
      -d "{\"name\":\"bench\",\"expires_at\":\"$(date -u -d "+1 day" +%Y-%m-%dT%H:%M:%SZ)\",\"password\":\"Bench-Pass-2026!\"}" | jq -r .key)
    case $KEY in gk_*) ;; *) echo "could not make an API key through POST /api/auth/keys/"; exit 1 ;; esac
    check 200 "http://127.0.0.1:$GH/x" -H "X-API-Key: $KEY"
  fi

  P="gatehouse.cg.$GH_PID"
  ! wants public || measure "$GH_PID" "$P" public "http://127.0.0.1:$GH/pub/x"
  ! wants limited || measure "$GH_PID" "$P" limited "http://127.0.0.1:$GH/lim/x"
  ! wants public_token || measure "$GH_PID" "$P" public_token "http://127.0.0.1:$GH/pub/x" -H "$AUTH"
  ! wants required || measure "$GH_PID" "$P" required "http://127.0.0.1:$GH/x" -H "$AUTH"
  ! wants key || measure "$GH_PID" "$P" key "http://127.0.0.1:$GH/x" -H "X-API-Key: $KEY"
  ! wants key_bearer || measure "$GH_PID" "$P" key_bearer "http://127.0.0.1:$GH/x" -H "Authorization: Bearer $KEY"
  ! wants profile || measure "$GH_PID" "$P" profile "http://127.0.0.1:$GH/api/auth/profile/" -H "$AUTH"
  stop "$GH_PID"
fi

# --- 4a. gatehouse on PostgreSQL: the shared limit ------------------------------------------
# The PostgreSQL server is not under valgrind; gatehouse's own threads are all counted, the
# background reservation of budget slices included (one per 33,333 requests here).
if wants pg_public || wants pg_shared; then
  say "gatehouse on PostgreSQL under callgrind"
  ON_LOAD_CPU=(${ON_LOAD_CPU[@]+"${ON_LOAD_CPU[@]}"})
  for v in PG GP GPM; do free_port "$v"; done
  start_postgres "$PG"
  {
    gatehouse_server gatehouse_pg "$GP" "$GPM"
    cat <<EOF
[store]
backend = "postgres"
replicas = 2
EOF
    proxy_routes /shr/ true
  } >"$WORK/gatehouse_pg.toml"
  "$GATEHOUSE_BIN" migrate -c "$WORK/gatehouse_pg.toml" >/dev/null
  start gatehouse_pg "${VALGRIND[@]}" --callgrind-out-file="$WORK/gatehouse_pg.cg.%p" \
    "$GATEHOUSE_BIN" serve -c "$WORK/gatehouse_pg.toml"
  GP_PID=$LAST_PID
  wait_http "http://127.0.0.1:$GPM/readyz" 200 1200
  for path in pub shr; do
    got=$(curl -s --max-time 60 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GP/$path/x")
    [ "$got" = 200 ] || { echo "check failed: /$path/x answered $got, not 200"; exit 1; }
  done
  curl -s --max-time 60 -D - -o /dev/null "http://127.0.0.1:$GP/shr/x" | grep -qi '^ratelimit:' ||
    { echo "check failed: /shr/x answered without the RateLimit field"; exit 1; }
  P="gatehouse_pg.cg.$GP_PID"
  ! wants pg_public || measure "$GP_PID" "$P" pg_public "http://127.0.0.1:$GP/pub/x"
  ! wants pg_shared || measure "$GP_PID" "$P" pg_shared "http://127.0.0.1:$GP/shr/x"
  stop "$GP_PID"
fi

# --- 4b. the peers ---------------------------------------------------------------------------
if wants nginx; then
  say "nginx (plain proxy) under callgrind"
  mkdir -p "$WORK/nginx/logs"
  {
    echo "worker_processes 1; daemon off; master_process off;"
    echo "events { worker_connections 4096; }"
    echo "pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/logs/error.log warn;"
    nginx_proxy_http "$NGX" "$UP"
  } >"$WORK/nginx/nginx.conf"
  start nginx "${VALGRIND[@]}" --callgrind-out-file="$WORK/nginx.cg.%p" \
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
  NGX_PID=$LAST_PID
  wait_http "http://127.0.0.1:$NGX/" 200 1200
  measure "$NGX_PID" "nginx.cg.$NGX_PID" nginx "http://127.0.0.1:$NGX/x"
  stop "$NGX_PID"
fi
if wants haproxy; then
  say "HAProxy (jwt_verify) under callgrind"
  need haproxy openssl
  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
  HSECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  HP="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '{"sub":"1"}' | b64url)"
  HTOKEN="$HP.$(printf '%s' "$HP" | openssl dgst -sha256 -hmac "$HSECRET" -binary | b64url)"
  haproxy_jwt_cfg "$HAP" "$HSECRET" "$UP"
  start haproxy "${VALGRIND[@]}" --callgrind-out-file="$WORK/haproxy.cg.%p" haproxy -db -f "$WORK/haproxy.cfg"
  HAP_PID=$LAST_PID
  wait_http "http://127.0.0.1:$HAP/" 401 1200
  measure "$HAP_PID" "haproxy.cg.$HAP_PID" haproxy "http://127.0.0.1:$HAP/x" -H "Authorization: Bearer $HTOKEN"
  stop "$HAP_PID"
fi

# --- 5. table -------------------------------------------------------------------------------
median() { # TARGET -> median Ir/request over its rounds
  awk -F'\t' -v t="$1" '$1 == t {print $5}' "$RESULTS" | sort -n |
    awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%d\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { # TARGET -> "min-max" over its rounds
  awk -F'\t' -v t="$1" '$1 == t {print $5}' "$RESULTS" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'
}
say "instructions per request (callgrind, user space; wrk -t 1 -c $CONNS, $REQUESTS requests after $WARMUP, $ROUNDS round(s))"
echo "gatehouse: $GATEHOUSE_BIN"
echo "bare:      $BARE_BIN"
printf '| %-40s | %14s | %17s |\n' target "Ir / request" "rounds (min-max)"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..15}):" "$(printf -- '-%.0s' {1..18}):"
declare -A LABEL=(
  [bare]="bare Pingora"
  [public]="gatehouse public route"
  [public_token]="gatehouse public route, with the token"
  [limited]="gatehouse public route, rate-limited (local)"
  [pg_public]="gatehouse on PostgreSQL, public route"
  [pg_shared]="gatehouse on PostgreSQL, rate-limited (shared)"
  [required]="gatehouse required route"
  [key]="gatehouse required route, X-API-Key"
  [key_bearer]="gatehouse required route, Bearer key"
  [profile]="GET /api/auth/profile/"
  [nginx]="nginx plain proxy"
  [haproxy]="HAProxy jwt_verify"
)
for t in $TARGETS; do
  grep -q "^$t	" "$RESULTS" || continue
  printf '| %-40s | %14s | %17s |\n' "${LABEL[$t]:-$t}" "$(median "$t")" "$(spread "$t")"
done
cp "$RESULTS" "${RESULTS_COPY:-/tmp/gatehouse-callgrind-results.tsv}"
echo "raw rows: ${RESULTS_COPY:-/tmp/gatehouse-callgrind-results.tsv}"
