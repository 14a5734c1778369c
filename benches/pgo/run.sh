#!/usr/bin/env bash
# Profile-guided optimization, measured: `bash benches/pgo/run.sh` from the repository root.
#
#   1. builds gatehouse and the bare Pingora proxy with the release profile, instrumented
#      (`-Cprofile-generate`, in target/pgo-generate);
#   2. trains them on 127.0.0.1 with the load benchmark's traffic: wrk on the bare proxy, on a
#      public and an auth-required route, on GET /api/auth/profile/, and a few logins;
#   3. merges the profiles with rustup's llvm-profdata (the one of rustc's LLVM; the llvm-tools
#      component is added when missing);
#   4. builds both again with `-Cprofile-use` (target/pgo-use);
#   5. runs benches/callgrind/run.sh on that build, to set beside the release build's figures.
# Two full fat-LTO builds: ~40 min on 2 cores. Knobs: TRAIN_SECONDS=10, SKIP_CALLGRIND=1.
set -euo pipefail
TRAIN_SECONDS=${TRAIN_SECONDS:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx curl jq

PROFDATA=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host:/ {print $2}')/bin/llvm-profdata
if [ ! -x "$PROFDATA" ]; then
  say "rustup component add llvm-tools"
  rustup component add llvm-tools
fi

# build DIR RUSTFLAGS: gatehouse and the bare proxy with the release profile into target/DIR;
# sets BUILT_GATEHOUSE and BUILT_BARE.
build() {
  say "cargo build --release --bin gatehouse --bench bare_pingora (target/$1, RUSTFLAGS=$2)"
  BUILT_BARE=$(RUSTFLAGS=$2 CARGO_TARGET_DIR=$ROOT/target/$1 cargo build --release --bin gatehouse \
    --bench bare_pingora --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "bare_pingora") | .executable')
  BUILT_GATEHOUSE=$ROOT/target/$1/release/gatehouse
  for bin in "$BUILT_GATEHOUSE" "$BUILT_BARE"; do
    [ -n "$bin" ] && [ -x "$bin" ] && continue
    RUSTFLAGS=$2 CARGO_TARGET_DIR=$ROOT/target/$1 cargo build --release --bin gatehouse --bench bare_pingora
    echo "not built: '$bin'"
    exit 1
  done
}

work_dir pgo
PROFILES=$WORK/profiles
mkdir -p "$PROFILES"
build pgo-generate "-Cprofile-generate=$PROFILES"

for v in UP BARE_PORT GH GHM; do free_port "$v"; done
upstream_nginx "$UP"
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
{
  gatehouse_server gatehouse "$GH" "$GHM"
  cat <<EOF
[jwt]
access_lifetime_seconds = 3600
[throttle]
enabled = false
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/pub/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
[[routes]]
prefix = "/"
upstreams = ["127.0.0.1:$UP"]
auth = "required"
EOF
} >"$WORK/gatehouse.toml"
"$BUILT_BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP" >"$WORK/bare.out" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
"$BUILT_GATEHOUSE" serve -c "$WORK/gatehouse.toml" >"$WORK/gatehouse.out" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$BARE_PORT/"
wait_http "http://127.0.0.1:$GHM/readyz"

say "training (${TRAIN_SECONDS}s per workload)"
H='Content-Type: application/json'
curl -sf -XPOST "http://127.0.0.1:$GH/api/auth/register/" -H "$H" \
  -d '{"username":"benchuser","email":"bench@example.com","password":"Bench-Pass-2026!"}' >/dev/null
TOKEN=$(curl -sf -XPOST "http://127.0.0.1:$GH/api/token/" -H "$H" \
  -d '{"username":"benchuser","password":"Bench-Pass-2026!"}' | jq -r .access)
AUTH="Authorization: Bearer $TOKEN"
for _ in $(seq 20); do
  curl -sf -o /dev/null -XPOST "http://127.0.0.1:$GH/api/token/" -H "$H" \
    -d '{"username":"benchuser","password":"Bench-Pass-2026!"}'
done
train() { # URL [wrk args]
  local url=$1
  shift
  echo "  $url $*" | sed "s/$TOKEN/TOKEN/"
  wrk -t 1 -c 16 -d "${TRAIN_SECONDS}s" "$@" "$url" | awk '/Requests\/sec|Non-2xx/'
}
train "http://127.0.0.1:$BARE_PORT/x"
train "http://127.0.0.1:$GH/pub/x"
train "http://127.0.0.1:$GH/x" -H "$AUTH"
train "http://127.0.0.1:$GH/api/auth/profile/" -H "$AUTH"
train "http://127.0.0.1:$GH/x" # 401s: the refusal path

# The profiles are written when the processes exit.
for pid in "$BARE_PID" "$GH_PID"; do
  kill -INT "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
ls "$PROFILES"/*.profraw >/dev/null 2>&1 || { echo "no .profraw written in $PROFILES"; exit 1; }
"$PROFDATA" merge -o "$WORK/merged.profdata" "$PROFILES"
say "merged $(find "$PROFILES" -name '*.profraw' | wc -l) profiles into $WORK/merged.profdata"
mkdir -p "$ROOT/target/pgo-use"
cp "$WORK/merged.profdata" "$ROOT/target/pgo-use/merged.profdata"

build pgo-use "-Cprofile-use=$ROOT/target/pgo-use/merged.profdata -Cllvm-args=-pgo-warn-missing-function=false"
echo "PGO build: $BUILT_GATEHOUSE"
echo "           $BUILT_BARE"
if [ "${SKIP_CALLGRIND:-0}" != 1 ]; then
  GATEHOUSE_BIN=$BUILT_GATEHOUSE BARE_BIN=$BUILT_BARE TARGETS="bare public required" \
    bash "$ROOT/benches/callgrind/run.sh"
fi
