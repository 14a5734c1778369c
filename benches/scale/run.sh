#!/usr/bin/env bash
# The scale run (issue 6), one command: `bash benches/scale/run.sh` from the repository root.
#
# For every N in SIZES (default "1000 1000000"):
#   - loads N users (+ one staff user `admin`) into a fresh data dir with the bench-only
#     loader `benches/scale_load.rs` (the store's bulk `insert_users`, one precomputed
#     argon2id hash at the default parameters for everyone), reports load time and the
#     store's size on disk (`du` of DATA_DIR/db);
#   - starts one gatehouse per N (defaults, `hash_threads = nproc`, throttle limits out of
#     reach, access log off), all on 127.0.0.1, free ports, a temp dir;
# then measures with wrk --latency, ROUNDS rounds, each round going through the sizes in a
# different order (so a busy neighbour hurts 1k and 1M alike), and prints medians:
#   login      POST /api/token/, a random user of the N each request (-t 1 -c LOGIN_CONNS)
#   profile    GET /api/auth/profile/, one user's token (obtained through POST /api/token/)
#   profile random  GET /api/auth/profile/, a random token of TOKENS users drawn across all N
#                   (minted by the loader with the data dir's key): the store read is not always
#                   the same hot page
#   admin      GET /api/auth/admin/users/?page=K&page_size=PAGE_SIZE as `admin`, for the first,
#              the middle and the last full page (-c ADMIN_CONNS)
# and, a few sequential requests per size with curl: `status=active` (last full page) and
# `status=deleted` pages, a `search=` page (a scan by nature) and the unpaged list (every
# user in one response). Then the ratios largest N / smallest N against the 1.2x target.
#
# Knobs (environment): SIZES="1000 1000000" ROUNDS=3 DURATION=10 LOGIN_DURATION=20
#   LOGIN_CONNS=$(nproc) PROFILE_CONNS=32 ADMIN_CONNS=8 PAGE_SIZE=50 TOKENS=100000 THREADS=2
#   EXTRAS=1 (0: skip the curl-timed admin lists; search= and the unpaged list take seconds at 1M)
#   KEEP=1 keeps the work dir (stores, configs, wrk outputs) and prints its path.
set -euo pipefail

SIZES=${SIZES:-"1000 1000000"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
LOGIN_DURATION=${LOGIN_DURATION:-20}
# Logins: argon2id at the defaults costs ~20 ms of one CPU per verification and gatehouse
# runs nproc hashing threads. With more connections than hashing threads every extra login
# waits for a thread and p99 measures queueing (connections / threads x 20 ms), not what one
# login costs; the figure that can move with N is the username lookup, microseconds under
# that. So: as many connections as hashing threads.
LOGIN_CONNS=${LOGIN_CONNS:-$(nproc)}
PROFILE_CONNS=${PROFILE_CONNS:-32}
ADMIN_CONNS=${ADMIN_CONNS:-8}
PAGE_SIZE=${PAGE_SIZE:-50}
TOKENS=${TOKENS:-100000}
THREADS=${THREADS:-2}
EXTRAS=${EXTRAS:-1}
PASSWORD='Scale-Pass-2026!'
export SCALE_PASSWORD=$PASSWORD

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

# --- 1. tools and binaries ------------------------------------------------------------------
need wrk curl jq

say "building gatehouse (release) and the loader (cargo bench --no-run)"
cargo build --release --bin gatehouse 2>&1 | tail -1
GATEHOUSE=$ROOT/target/release/gatehouse
# Built once with its messages shown (a failure stops here, saying why), then asked for its
# path: cargo prints the executable only in its JSON messages.
cargo bench --bench scale_load --no-run 2>&1 | tail -1
LOADER=$(cargo bench --bench scale_load --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "scale_load" and .executable != null) | .executable' |
  tail -1)
if [ -z "$LOADER" ] || [ ! -x "$LOADER" ]; then
  echo "could not build the loader: cargo bench --bench scale_load --no-run"
  exit 1
fi
echo "gatehouse: $GATEHOUSE"
echo "loader:    $LOADER"

# --- 2. work dir, cleanup, ports ------------------------------------------------------------
work_dir scale

gatehouse_conf() { # PORT METRICS_PORT DATA_DIR NAME
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
metrics_listen = "127.0.0.1:$2"
data_dir = "$3"
pid_file = "$WORK/$4.pid"
upgrade_sock = "$WORK/$4-upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[jwt]
# The loader mints the profile tokens before the server starts: they must outlive the run.
access_lifetime_seconds = 7200
[passwords]
# argon2 defaults (m=19456 KiB, t=2, p=1), one hashing thread per CPU, said explicitly.
hash_threads = $(nproc)
[throttle]
# Every login here succeeds, so only failures would count; out of reach all the same.
login_failures_per_username = 1000000000
login_failures_per_address = 1000000000
registrations_per_address = 1000000000
[log]
access_log = false
level = "warn"
EOF
}

# --- 3. load every size ---------------------------------------------------------------------
# shellcheck disable=SC2206 # SIZES is a list of numbers
SIZE_LIST=($SIZES)
declare -A PORT MPORT PID LOAD_S DISK DISK_B
for n in "${SIZE_LIST[@]}"; do
  free_port "PORT[$n]"
  free_port "MPORT[$n]"
  gatehouse_conf "${PORT[$n]}" "${MPORT[$n]}" "$WORK/data-$n" "gatehouse-$n" >"$WORK/gatehouse-$n.toml"
  say "loading $n users (+ admin) into $WORK/data-$n"
  GATEHOUSE_CONFIG=$WORK/gatehouse-$n.toml "$LOADER" "$WORK/data-$n" "$n" "$WORK/tokens-$n" "$TOKENS" |
    tee "$WORK/load-$n.out"
  LOAD_S[$n]=$(awk '/^loaded/ { for (i = 1; i <= NF; i++) if ($i == "in") print $(i + 1) }' "$WORK/load-$n.out")
  sync "$WORK/data-$n/db" 2>/dev/null || sync
  DISK[$n]=$(du -sh "$WORK/data-$n/db" | cut -f1)
  DISK_B[$n]=$(du -sb "$WORK/data-$n/db" | cut -f1)
  echo "store on disk: ${DISK[$n]} (${DISK_B[$n]} bytes, du of $WORK/data-$n/db)"
done

# --- 4. one gatehouse per size --------------------------------------------------------------
H='Content-Type: application/json'
login_token() { # N USERNAME -> access token
  curl -sf -XPOST "http://127.0.0.1:${PORT[$1]}/api/token/" -H "$H" \
    -d "{\"username\":\"$2\",\"password\":\"$PASSWORD\"}" | jq -r .access
}
declare -A ADMIN_TOKEN USER_TOKEN PAGES LAST_FULL
for n in "${SIZE_LIST[@]}"; do
  say "starting gatehouse on 127.0.0.1:${PORT[$n]} with $n users"
  "$GATEHOUSE" serve -c "$WORK/gatehouse-$n.toml" >"$WORK/gatehouse-$n.out" 2>"$WORK/gatehouse-$n.err" &
  PID[$n]=$!
  PIDS+=("${PID[$n]}")
  started=$(date +%s.%N)
  wait_http "http://127.0.0.1:${MPORT[$n]}/readyz" 200 1200
  echo "ready in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  ADMIN_TOKEN[$n]=$(login_token "$n" admin)
  USER_TOKEN[$n]=$(login_token "$n" "$(printf 'user%07d' $(((RANDOM * 32768 + RANDOM) % n + 1)))")
  total=$((n + 1))
  PAGES[$n]=$(((total + PAGE_SIZE - 1) / PAGE_SIZE))
  # The deepest page with PAGE_SIZE rows (with N a multiple of 1000 the very last page holds
  # only the staff user): "last" below, so every admin row serializes the same number of users.
  LAST_FULL[$n]=$((total / PAGE_SIZE))
  # Checks: the loaded store is what the API sees, and the minted tokens are accepted.
  got=$(curl -sf "http://127.0.0.1:${PORT[$n]}/api/auth/admin/users/?page=last&page_size=$PAGE_SIZE" \
    -H "Authorization: Bearer ${ADMIN_TOKEN[$n]}" | jq -c '[.count, (.results | length), .results[-1].username]')
  want="[$total,$((total - (PAGES[$n] - 1) * PAGE_SIZE)),\"admin\"]"
  if [ "$got" != "$want" ]; then echo "check failed: last admin page is $got, expected $want"; exit 1; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$n]}/api/auth/profile/" \
    -H "Authorization: Bearer $(head -1 "$WORK/tokens-$n")")
  if [ "$code" != 200 ]; then echo "check failed: a minted token got $code on the profile"; exit 1; fi
  echo "checks passed: count $total, $PAGE_SIZE per page, ${PAGES[$n]} pages, minted tokens accepted"
done

# --- 5. wrk scripts -------------------------------------------------------------------------
# Each wrk thread has its own Lua state: number the threads so their random streams differ.
lua_seed='local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local function seed() math.randomseed(os.time() * 1000 + (tid or 0)); for _ = 1, 10 do math.random() end end'
for n in "${SIZE_LIST[@]}"; do
  cat >"$WORK/login-$n.lua" <<EOF
$lua_seed
local n = $n
function init(args) seed() end
function request()
  local body = string.format('{"username":"user%07d","password":"$PASSWORD"}', math.random(1, n))
  return wrk.format("POST", "/api/token/", { ["Content-Type"] = "application/json" }, body)
end
EOF
  cat >"$WORK/profile-$n.lua" <<EOF
$lua_seed
local tokens = {}
function init(args)
  seed()
  for line in io.lines("$WORK/tokens-$n") do tokens[#tokens + 1] = "Bearer " .. line end
end
function request()
  return wrk.format("GET", "/api/auth/profile/", { ["Authorization"] = tokens[math.random(1, #tokens)] })
end
EOF
done

# --- 6. measuring ---------------------------------------------------------------------------
RESULTS=$WORK/results.tsv
: >"$RESULTS"
TICK=$(getconf CLK_TCK)
to_ms() { # wrk latency ("812.00us", "1.20ms", "2.01s") -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# measure N LABEL THREADS CONNS DURATION URL [wrk args...]: one wrk run, one row in $RESULTS
# (N, label, req/s, p50 ms, p99 ms, non-2xx + errors, requests, gatehouse CPU us/request).
measure() {
  local n=$1 label=$2 threads=$3 conns=$4 dur=$5 url=$6
  shift 6
  local out before after rps p50 p99 bad reqs cpu
  out=$WORK/wrk.$n.$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).$RANDOM.txt
  before=$(cpu_ticks "${PID[$n]}")
  wrk --latency -t "$threads" -c "$conns" -d "${dur}s" --timeout 10s "$@" "$url" >"$out" 2>&1
  after=$(cpu_ticks "${PID[$n]}")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  bad=$(awk '/Non-2xx/ {s += $NF} /Socket errors/ {gsub(/,/, ""); s += $4 + $6 + $8 + $10} END {print s + 0}' "$out")
  reqs=$(awk '/requests in/ {print $1}' "$out")
  cpu=$(awk -v t=$((after - before)) -v r="${reqs:-0}" -v hz="$TICK" 'BEGIN { if (r > 0) printf "%.1f", t * 1e6 / hz / r; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$label" "${rps:-0}" "$p50" "$p99" "$bad" "${reqs:-0}" "$cpu" >>"$RESULTS"
  printf '  N=%-8s %-22s %9s req/s  p50 %8s ms  p99 %8s ms  bad %-4s CPU %6s us/req\n' \
    "$n" "$label" "${rps:-0}" "$p50" "$p99" "$bad" "$cpu"
  if [ "$bad" != 0 ]; then echo "    ^ $bad failed requests (non-2xx or socket errors): $out"; fi
}

ADMIN_PATH=/api/auth/admin/users/
run_size() { # N: every wrk measurement against that size's gatehouse
  local n=$1 base="http://127.0.0.1:${PORT[$1]}" mid=$(((LAST_FULL[$1] + 1) / 2))
  local admin="Authorization: Bearer ${ADMIN_TOKEN[$n]}"
  measure "$n" login 1 "$LOGIN_CONNS" "$LOGIN_DURATION" "$base/api/token/" -s "$WORK/login-$n.lua"
  measure "$n" profile "$THREADS" "$PROFILE_CONNS" "$DURATION" "$base/api/auth/profile/" -H "Authorization: Bearer ${USER_TOKEN[$n]}"
  measure "$n" "profile random" "$THREADS" "$PROFILE_CONNS" "$DURATION" "$base/api/auth/profile/" -s "$WORK/profile-$n.lua"
  measure "$n" "admin page 1" "$THREADS" "$ADMIN_CONNS" "$DURATION" "$base$ADMIN_PATH?page=1&page_size=$PAGE_SIZE" -H "$admin"
  measure "$n" "admin page mid" "$THREADS" "$ADMIN_CONNS" "$DURATION" "$base$ADMIN_PATH?page=$mid&page_size=$PAGE_SIZE" -H "$admin"
  measure "$n" "admin page last" "$THREADS" "$ADMIN_CONNS" "$DURATION" "$base$ADMIN_PATH?page=${LAST_FULL[$n]}&page_size=$PAGE_SIZE" -H "$admin"
}

for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  count=${#SIZE_LIST[@]}
  for i in $(seq 0 $((count - 1))); do
    # Each round starts one size later, so no size always runs first (or last).
    run_size "${SIZE_LIST[$(((i + round - 1) % count))]}"
  done
done

declare -A RSS_AFTER_WRK
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
for n in "${SIZE_LIST[@]}"; do RSS_AFTER_WRK[$n]=$(rss_mib "${PID[$n]}"); done

# The other admin lists, timed with curl (a few sequential requests per size): `status=`
# pages (the inactive-id index), a search (a substring of username or email: a scan of every
# user, by nature), and the unpaged list (every user in one response).
declare -A EXTRA
EXTRA_LABELS=("status=active, last full page" "status=deleted, page 1" "search=, page 1" "unpaged list (all users)")
curl_ms() { # URL TOKEN TIMES -> "median_ms max_ms bytes status"
  local t code size times=()
  for _ in $(seq "$3"); do
    read -r t code size < <(curl -s -o /dev/null --max-time 300 -w '%{time_total} %{http_code} %{size_download}\n' \
      -H "Authorization: Bearer $2" "$1" || echo "300 000 0")
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -g |
    awk -v code="$code" -v size="$size" '{a[NR] = $1 * 1000} END { printf "%.1f %.1f %s %s\n", a[int((NR + 1) / 2)], a[NR], size, code }'
}
if [ "$EXTRAS" = 1 ]; then
  say "admin lists that are not paged by id (curl, sequential)"
  for n in "${SIZE_LIST[@]}"; do
    base="http://127.0.0.1:${PORT[$n]}$ADMIN_PATH"
    for what in "status=active&page=${LAST_FULL[$n]}&page_size=$PAGE_SIZE|${EXTRA_LABELS[0]}" \
      "status=deleted&page=1&page_size=$PAGE_SIZE|${EXTRA_LABELS[1]}" \
      "search=user0000099&page=1&page_size=$PAGE_SIZE|${EXTRA_LABELS[2]}" \
      "|${EXTRA_LABELS[3]}"; do
      query=${what%%|*}
      label=${what#*|}
      tries=5
      [ -z "$query" ] && tries=1
      EXTRA[$n,$label]=$(curl_ms "$base?$query" "${ADMIN_TOKEN[$n]}" "$tries")
      read -r med max bytes code <<<"${EXTRA[$n,$label]}"
      printf '  N=%-8s %-34s median %9s ms  max %9s ms  %s bytes  HTTP %s\n' "$n" "$label" "$med" "$max" "$bytes" "$code"
    done
  done
fi

# --- 7. summary -----------------------------------------------------------------------------
median() { # N LABEL COLUMN
  awk -F'\t' -v n="$1" -v l="$2" -v c="$3" '$1 == n && $2 == l {print $c}' "$RESULTS" | sort -g |
    awk '{a[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
LABELS=(login profile "profile random" "admin page 1" "admin page mid" "admin page last")

say "summary: medians of $ROUNDS rounds; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "login: wrk -t 1 -c $LOGIN_CONNS -d ${LOGIN_DURATION}s; profile: -t $THREADS -c $PROFILE_CONNS -d ${DURATION}s; admin: -t $THREADS -c $ADMIN_CONNS -d ${DURATION}s, page_size=$PAGE_SIZE, pages 1, mid and last = the last full page"
for n in "${SIZE_LIST[@]}"; do
  echo
  echo "N = $n users (+ admin): load ${LOAD_S[$n]} s, store on disk ${DISK[$n]} (${DISK_B[$n]} bytes), ${PAGES[$n]} admin pages, gatehouse RSS ${RSS_AFTER_WRK[$n]} MiB after the wrk runs, $(rss_mib "${PID[$n]}") MiB now"
  printf '| %-16s | %10s | %9s | %9s | %7s | %11s |\n' "N=$n" "req/s" "p50 ms" "p99 ms" "failed" "CPU us/req"
  printf '|%s|%s|%s|%s|%s|%s|\n' "------------------" "-----------:" "----------:" "----------:" "--------:" "------------:"
  for label in "${LABELS[@]}"; do
    printf '| %-16s | %10.0f | %9.2f | %9.2f | %7s | %11s |\n' "$label" "$(median "$n" "$label" 3)" \
      "$(median "$n" "$label" 4)" "$(median "$n" "$label" 5)" "$(median "$n" "$label" 6)" "$(median "$n" "$label" 8)"
  done
done

if ((${#SIZE_LIST[@]} >= 2)); then
  small=${SIZE_LIST[0]}
  large=${SIZE_LIST[-1]}
  echo
  echo "ratios N=$large / N=$small (target: login p99 and admin page p99 <= 1.2):"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  printf '| %-16s | %8s | %8s | %10s |\n' "" "p99" "req/s" "target"
  printf '|%s|%s|%s|%s|\n' "------------------" "---------:" "---------:" "------------"
  for label in "${LABELS[@]}"; do
    r=$(ratio "$(median "$large" "$label" 5)" "$(median "$small" "$label" 5)")
    case $label in
      login | admin*) verdict=$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r <= 1.2) ? "<= 1.2: met" : "<= 1.2: MISSED" }') ;;
      *) verdict="(no target)" ;;
    esac
    printf '| %-16s | %8s | %8s | %10s |\n' "$label" "$r" "$(ratio "$(median "$large" "$label" 3)" "$(median "$small" "$label" 3)")" "$verdict"
  done
fi
if [ "$EXTRAS" = 1 ]; then
  echo
  echo "other admin lists (curl, median of 5 sequential requests; unpaged: 1 request):"
  for n in "${SIZE_LIST[@]}"; do
    for label in "${EXTRA_LABELS[@]}"; do
      read -r med max bytes code <<<"${EXTRA[$n,$label]}"
      printf '  N=%-8s %-34s %9s ms (max %s ms), %s bytes, HTTP %s\n' "$n" "$label" "$med" "$max" "$bytes" "$code"
    done
  done
fi
cp "$RESULTS" "${RESULTS_COPY:-/tmp/gatehouse-scale-results.tsv}"
echo
echo "raw rows (N, label, req/s, p50, p99, failed, requests, CPU us/req): ${RESULTS_COPY:-/tmp/gatehouse-scale-results.tsv}"
