#!/usr/bin/env bash
# What a rate limit costs (issue 27), one command: `bash benches/ratelimit/run.sh`.
#
# Two gatehouse processes (release build, threads = 1, access log off) in front of one nginx
# upstream, each with two public routes that differ only in their limit:
#   /free/  no rate_limit
#   /lim/   rate_limit = { requests = 1000000, per_seconds = 1, by = "address" }: a budget the
#           load never reaches, so every request is admitted and pays the whole check
# one on sled (local buckets), one on a throwaway PostgreSQL with `rate_limit_shared = true`
# (slices of the budget reserved from the database in the background). wrk measures each
# route in ROUNDS interleaved rounds (each round starts one target later); the figure is
# gatehouse's CPU time per request (user + system from /proc), and the ratios limited / free
# on each process: issue 27's targets are 1.03x (local) and 1.1x (shared).
#
# Knobs: DURATION=8 CONNS=16 ROUNDS=5 PIN=1 (gatehouse on CPU 1, wrk, nginx and PostgreSQL on
# CPU 0), GATEHOUSE_BIN=... (default: `cargo build --release`), KEEP=1 keeps the work dir,
# ORDER=rotate (each round starts one target later) or ORDER=pairs (each process's two routes
# back to back, the limited one first in every other round: the paired ratio then compares
# two runs a few seconds apart on the same process), PROCESSES="local shared" (`local` alone:
# no PostgreSQL and no second gatehouse on the machine while measuring).
set -euo pipefail
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-5}
PIN=${PIN:-1}
ORDER=${ORDER:-rotate}
read -ra PROCS <<<"${PROCESSES:-local shared}"
has() { case " ${PROCS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx curl jq taskset
pin_cpus

gatehouse_bin

work_dir ratelimit
chmod 755 "$WORK"
for v in UP PG S SM P PM; do free_port "$v"; done

# --- PostgreSQL (benches/lib.sh) ---------------------------------------------------------------
! has shared || start_postgres "$PG"

# --- upstream and the two gatehouse processes ------------------------------------------------
upstream_nginx "$UP"
config() { # NAME PORT METRICS_PORT BACKEND SHARED
  {
    gatehouse_server "$1" "$2" "$3"
    cat <<CONF
[store]
backend = "$4"
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/free/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
[[routes]]
prefix = "/lim/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
rate_limit = { requests = 1000000, per_seconds = 1, burst = 0, by = "address" }
rate_limit_shared = $5
CONF
  } >"$WORK/$1.toml"
}
config local "$S" "$SM" sled false
if has shared; then
  config shared "$P" "$PM" postgres true
  "$GATEHOUSE_BIN" migrate -c "$WORK/shared.toml" >/dev/null
fi

"${ON_LOAD_CPU[@]}" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
declare -A PID PORT
PORT[local]=$S
PORT[shared]=$P
for b in "${PROCS[@]}"; do
  "${ON_PROXY_CPU[@]}" "$GATEHOUSE_BIN" serve -c "$WORK/$b.toml" >"$WORK/$b.out" 2>"$WORK/$b.err" &
  PID[$b]=$!
  PIDS+=("${PID[$b]}")
done
wait_http "http://127.0.0.1:$UP/"
! has local || wait_http "http://127.0.0.1:$SM/readyz"
! has shared || wait_http "http://127.0.0.1:$PM/readyz"
for b in "${PROCS[@]}"; do
  got=$(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[$b]}/lim/x" | tr -d '\r')
  grep -qi '^ratelimit-policy: "default";q=1000000;w=1' <<<"$got" ||
    { echo "$b: /lim/ answers without its RateLimit-Policy:"; echo "$got"; exit 1; }
done

# --- measuring --------------------------------------------------------------------------------
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS=$WORK/results.tsv
: >"$RESULTS"
run() { # PROCESS ROUTE
  local out=$WORK/wrk.$1.$2.$RANDOM.txt before after reqs rps
  before=$(cpu "${PID[$1]}")
  "${ON_LOAD_CPU[@]}" wrk -t 1 -c "$CONNS" -d "${DURATION}s" "http://127.0.0.1:${PORT[$1]}/$2/x" >"$out" 2>&1
  after=$(cpu "${PID[$1]}")
  if grep -q "Non-2xx" "$out"; then echo "$1 /$2/: non-2xx answers (the budget was reached?):"; cat "$out"; exit 1; fi
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" \
    "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" >>"$RESULTS"
  printf '  %-7s /%-5s %10s req/s  gatehouse CPU %s us/req\n' "$1" "$2/" "$rps" "$(tail -1 "$RESULTS" | cut -f4)"
}
say "warm-up"
for b in "${PROCS[@]}"; do
  for r in free lim; do
    wrk -t 1 -c "$CONNS" -d 2s "http://127.0.0.1:${PORT[$b]}/$r/x" >/dev/null
  done
done
TARGETS=()
for b in "${PROCS[@]}"; do TARGETS+=("$b free" "$b lim"); done
for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  n=${#TARGETS[@]}
  if [ "$ORDER" = pairs ]; then
    # Limited first in every other pair; the processes alternate too.
    order=()
    for i in $(seq 0 $((n - 1))); do
      j=$(((round % 2) ? i : n - 1 - i))
      order+=("${TARGETS[$j]}")
    done
  else
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${TARGETS[$(((i + round - 1) % n))]}"); done
  fi
  for target in "${order[@]}"; do
    # shellcheck disable=SC2086 # two words: process and route
    run $target
  done
done
median() { awk -F'\t' -v b="$1" -v r="$2" -v c="$3" '$1 == b && $2 == r {print $c}' "$RESULTS" | sort -g |
  awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
say "medians of $ROUNDS rounds (gatehouse threads = 1, wrk -t1 -c$CONNS, ${DURATION}s each; $(nproc) CPUs)"
printf '| process | /free/ req/s | /lim/ req/s | /free/ CPU us/req | /lim/ CPU us/req | CPU limited / free | target |\n|---|---:|---:|---:|---:|---:|---:|\n'
for b in "${PROCS[@]}"; do
  fc=$(median "$b" free 4); lc=$(median "$b" lim 4)
  printf '| %s | %s | %s | %s | %s | %.3fx | %s |\n' "$b" "$(median "$b" free 3)" "$(median "$b" lim 3)" \
    "$fc" "$lc" "$(awk -v a="$lc" -v b="$fc" 'BEGIN {print a / b}')" "$([ "$b" = local ] && echo "<= 1.03x" || echo "<= 1.10x")"
done
# Paired per round (each round's limited run against the same round's free run): less
# sensitive to a neighbour's load drifting between rounds than the medians above.
echo "CPU limited / free, per round:"
awk -F'\t' -v per="${#TARGETS[@]}" -v procs="${PROCS[*]}" '{ r = int((NR - 1) / per) + 1; v[r, $1 " " $2] = $4 } END {
  np = split(procs, p, " ")
  for (i = 1; i <= '"$ROUNDS"'; i++) {
    printf "  round %d:", i
    for (k = 1; k <= np; k++) printf " %s %.3fx", p[k], v[i, p[k] " lim"] / v[i, p[k] " free"]
    printf "\n"
  } }' "$RESULTS"
! has shared || echo "reservations in the database (shared): $("$PG_BIN/psql" -h 127.0.0.1 -p "$PG" -U postgres -tAc 'SELECT count(*) FROM rate_limits' gatehouse) bucket row(s)"
cp "$RESULTS" "${RESULTS_COPY:-/tmp/gatehouse-ratelimit-results.tsv}"
echo "raw rows: ${RESULTS_COPY:-/tmp/gatehouse-ratelimit-results.tsv}"
