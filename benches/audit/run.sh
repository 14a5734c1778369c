#!/usr/bin/env bash
# Issue 23, one command: `bash benches/audit/run.sh`. Login and password-change throughput of
# this tree's gatehouse (with the audit log) against the last commit before the audit work.
#
# Builds both release binaries (jemalloc, the default feature, as shipped): the before commit
# (BEFORE_REV, default e286d6f) in a detached worktree BEFORE_TREE (default
# ../gatehouse-audit-before, added when missing) with target dir BEFORE_TARGET (default its own
# target/), and this tree with $CARGO_TARGET_DIR (default target/), both at nice 10. Then, for
# each argon2 setting in ARGON ("default": m=19456 KiB t=2, a login is one 20-40 ms hash and a
# change two; "cheap": m=64 KiB t=1, so the write path shows), three gatehouse processes on
# loopback, each with its own embedded sled store:
#   before        the before binary
#   after-none    this tree, [audit] sink = "none"
#   after-stdout  this tree, the default sink (stdout), stdout to /dev/null
# all with threads = 1, access log off, throttle off, [email] backend = MAIL (default "none":
# no "Password Changed" outbox entry, the same in both; "console" adds the outbox write and the
# sender's delete), USERS users (bench0..). In ROUNDS interleaved rounds (each round starts one
# target later) it signs every user in (client.py state: a fresh access token and the current
# password), then runs wrk with benches/audit/bench.lua, -t CONNS -c CONNS -d DURATION:
#   login   POST /api/token/ with valid credentials, each connection over its own users;
#   change  PUT /api/auth/profile/password/ flipping each user between two passwords, each
#           change with the access token the user's previous change answered with (no login in
#           between: the change's own response carries the fresh pair).
# and measures req/s and gatehouse's CPU per request (user + system from /proc/PID/stat, all
# threads: the hashing threads and sled's included). It prints each run, then the medians with
# min-max and the after/before ratios. Any non-2xx answer stops the run.
# Knobs: ROUNDS=5 DURATION=8 CONNS=8 USERS=64 ARGON="default cheap" MAIL=none KEEP=1,
# BEFORE_BIN=... AFTER_BIN=... (skip the builds), HOLD=1 (start the targets of the first ARGON
# setting, print their ports and pids, and wait: for perf/strace).
set -euo pipefail
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-8}
USERS=${USERS:-64}
ARGON=${ARGON:-default cheap}
MAIL=${MAIL:-none}
BEFORE_REV=${BEFORE_REV:-e286d6f}
PW_A=Lantern-Quartz-4821
PW_B=Meadow-Cobalt-7390
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/audit
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk curl jq python3

build() { # TREE TARGET_DIR: builds the release gatehouse there, prints its path
  say "cargo build --release --bin gatehouse in $1 (target dir $2)" >&2
  (cd "$1" && CARGO_TARGET_DIR=$2 nice -n 10 cargo build --release --bin gatehouse >&2)
  echo "$2/release/gatehouse"
}
if [ -z "${BEFORE_BIN:-}" ]; then
  BEFORE_TREE=${BEFORE_TREE:-$(dirname "$ROOT")/gatehouse-audit-before}
  [ -d "$BEFORE_TREE" ] || git -C "$ROOT" worktree add --detach "$BEFORE_TREE" "$BEFORE_REV"
  if [ "$(git -C "$BEFORE_TREE" rev-parse HEAD)" != "$(git -C "$ROOT" rev-parse "$BEFORE_REV^{commit}")" ]; then
    echo "$BEFORE_TREE is not at $BEFORE_REV"
    exit 1
  fi
  BEFORE_BIN=$(build "$BEFORE_TREE" "${BEFORE_TARGET:-$BEFORE_TREE/target}")
fi
if [ -z "${AFTER_BIN:-}" ]; then
  AFTER_BIN=$(build "$ROOT" "${CARGO_TARGET_DIR:-$ROOT/target}")
fi
say "before: $BEFORE_BIN ($BEFORE_REV); after: $AFTER_BIN ($(git -C "$ROOT" rev-parse --short HEAD))"

work_dir audit
TARGETS=(before after-none after-stdout)
declare -A PID PORT BIN
BIN[before]=$BEFORE_BIN
BIN[after-none]=$AFTER_BIN
BIN[after-stdout]=$AFTER_BIN

config() { # NAME PORT METRICS_PORT ARGON TARGET
  gatehouse_server "$1" "$2" "$3"
  cat <<CONF
[jwt]
access_lifetime_seconds = 3600
[throttle]
enabled = false
[email]
backend = "$MAIL"
[log]
access_log = false
level = "warn"
CONF
  if [ "$4" = cheap ]; then
    printf '[passwords]\nargon2_memory_kib = 64\nargon2_iterations = 1\n'
  fi
  case $5 in
    after-none) printf '[audit]\nsink = "none"\n' ;;
    after-stdout) ;; # the default: stdout
  esac
}

start() { # ARGON: starts the three targets with fresh stores and registers the users
  local t gport mport name
  for t in "${TARGETS[@]}"; do
    name=$1-$t
    free_port gport
    PORT[$t]=$gport
    free_port mport
    config "$name" "${PORT[$t]}" "$mport" "$1" "$t" >"$WORK/$name.toml"
    "${BIN[$t]}" serve -c "$WORK/$name.toml" >/dev/null 2>"$WORK/$name.err" &
    PID[$t]=$!
    PIDS+=("${PID[$t]}")
    wait_http "http://127.0.0.1:$mport/readyz"
    python3 "$HERE/client.py" register "http://127.0.0.1:${PORT[$t]}" "$USERS" "$PW_A"
  done
}
stop() {
  local t
  for t in "${TARGETS[@]}"; do kill -INT "${PID[$t]}"; done
  for t in "${TARGETS[@]}"; do wait "${PID[$t]}" || true; done
}

TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS=$WORK/results.tsv
: >"$RESULTS"
run() { # ARGON TARGET MODE ROUND: one wrk run, its line in $RESULTS
  local out=$WORK/wrk.$1.$2.$3.$4.txt before after reqs rps
  before=$(cpu "${PID[$2]}")
  BENCH_MODE=$3 BENCH_STATE=$WORK/state.$2 BENCH_PW_A=$PW_A BENCH_PW_B=$PW_B BENCH_THREADS=$CONNS \
    wrk -t "$CONNS" -c "$CONNS" -d "${DURATION}s" -s "$HERE/bench.lua" "http://127.0.0.1:${PORT[$2]}/" >"$out" 2>&1
  after=$(cpu "${PID[$2]}")
  if grep -q 'Non-2xx\|Socket errors' "$out"; then echo "$1 $2 $3: errors:"; cat "$out"; exit 1; fi
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$3" "$2" "$4" "$rps" \
    "$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')" \
    "$reqs" >>"$RESULTS"
  printf '  %-7s %-6s %-12s round %s: %8s req/s  %8s us CPU/req  (%s requests)\n' "$1" "$3" "$2" "$4" \
    "$rps" "$(tail -1 "$RESULTS" | cut -f6)" "$reqs"
}
state() { # TARGET: a fresh token and the current password of every user
  python3 "$HERE/client.py" state "http://127.0.0.1:${PORT[$1]}" "$USERS" "$PW_A" "$PW_B" "$WORK/state.$1"
}

for argon in $ARGON; do
  say "argon2 $argon: starting ${TARGETS[*]}, $USERS users each"
  start "$argon"
  if [ "${HOLD:-0}" = 1 ]; then
    for t in "${TARGETS[@]}"; do state "$t"; echo "$t: pid ${PID[$t]} port ${PORT[$t]} state $WORK/state.$t"; done
    echo "holding; Ctrl-C stops everything"
    sleep infinity
  fi
  say "warm-up"
  for t in "${TARGETS[@]}"; do
    state "$t"
    BENCH_MODE=login BENCH_STATE=$WORK/state.$t BENCH_PW_A=$PW_A BENCH_PW_B=$PW_B BENCH_THREADS=$CONNS \
      wrk -t "$CONNS" -c "$CONNS" -d 2s -s "$HERE/bench.lua" "http://127.0.0.1:${PORT[$t]}/" >/dev/null
  done
  for round in $(seq "$ROUNDS"); do
    say "argon2 $argon, round $round of $ROUNDS"
    for k in 0 1 2; do
      t=${TARGETS[$(((round - 1 + k) % 3))]}
      state "$t"
      run "$argon" "$t" login "$round"
      run "$argon" "$t" change "$round"
    done
  done
  stop
done

say "medians of $ROUNDS rounds (min-max), wrk -t$CONNS -c$CONNS -d${DURATION}s, $USERS users, threads = 1, mail $MAIL"
python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    argon, mode, target, _round, rps, cpu, _n = line.rstrip("\n").split("\t")
    runs[(argon, mode, target)].append((float(rps), float(cpu)))
def fig(vals, fmt):
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"
print("| argon2 | workload | target | req/s | CPU us/req | after/before req/s | after/before CPU |")
print("|---|---|---|---:|---:|---:|---:|")
for (argon, mode, target), v in runs.items():
    rps = [r for r, _ in v]; cpu = [c for _, c in v]
    base = runs[(argon, mode, "before")]
    if target == "before":
        ratio = ("", "")
    else:
        ratio = (f"{statistics.median(rps) / statistics.median([r for r, _ in base]):.3f}",
                 f"{statistics.median(cpu) / statistics.median([c for _, c in base]):.3f}")
    print(f"| {argon} | {mode} | {target} | {fig(rps, '{:.1f}')} | {fig(cpu, '{:.0f}')} | {ratio[0]} | {ratio[1]} |")
PY
