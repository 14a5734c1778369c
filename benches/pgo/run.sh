#!/usr/bin/env bash
# The floor built the way the production build is: `bash benches/pgo/run.sh` from the repository
# root builds the bare Pingora proxy (benches/bare_pingora.rs) profile-guided, so the load run can
# set `make release`'s gatehouse (deploy/pgo-build.sh) beside a floor built the same way.
#
#   1. builds the bare proxy with the release profile, instrumented (`-Cprofile-generate`,
#      target/pgo-floor-generate);
#   2. trains it on 127.0.0.1 with the proxy traffic gatehouse's training sends (wrk through it
#      to an nginx upstream);
#   3. merges the profile with rustup's llvm-profdata (the llvm-tools component is added when
#      missing);
#   4. builds it again with `-Cprofile-use` (target/pgo-floor), and prints its path;
#   5. runs benches/callgrind/run.sh on it (the bare target), unless SKIP_CALLGRIND=1.
# Two release builds of the bench target: ~20 min on 2 cores. Knobs: TRAIN_SECONDS=10.
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

# build DIR RUSTFLAGS: the bare proxy with the release profile into target/DIR; sets BUILT_BARE.
build() {
  say "cargo build --release --bench bare_pingora (target/$1, RUSTFLAGS=$2)"
  BUILT_BARE=$(RUSTFLAGS=$2 CARGO_TARGET_DIR=$ROOT/target/$1 cargo build --release \
    --bench bare_pingora --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "bare_pingora") | .executable')
  if [ -z "$BUILT_BARE" ] || [ ! -x "$BUILT_BARE" ]; then
    RUSTFLAGS=$2 CARGO_TARGET_DIR=$ROOT/target/$1 cargo build --release --bench bare_pingora
    echo "not built: '$BUILT_BARE'"
    exit 1
  fi
}

work_dir pgo
PROFILES=$WORK/profiles
mkdir -p "$PROFILES"
build pgo-floor-generate "-Cprofile-generate=$PROFILES"

for v in UP BARE_PORT; do free_port "$v"; done
upstream_nginx "$UP"
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
"$BUILT_BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP" >"$WORK/bare.out" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$BARE_PORT/"

say "training (${TRAIN_SECONDS}s)"
wrk -t 1 -c 16 -d "${TRAIN_SECONDS}s" "http://127.0.0.1:$BARE_PORT/x" | awk '/Requests\/sec|Non-2xx/'

# The profile is written when the process exits.
kill -INT "$BARE_PID"
for _ in $(seq 100); do kill -0 "$BARE_PID" 2>/dev/null || break; sleep 0.1; done
ls "$PROFILES"/*.profraw >/dev/null 2>&1 || { echo "no .profraw written in $PROFILES"; exit 1; }
mkdir -p "$ROOT/target/pgo-floor"
"$PROFDATA" merge -o "$ROOT/target/pgo-floor/merged.profdata" "$PROFILES"

build pgo-floor "-Cprofile-use=$ROOT/target/pgo-floor/merged.profdata -Cllvm-args=-pgo-warn-missing-function=false"
echo "the floor, profile-guided: $BUILT_BARE"
if [ "${SKIP_CALLGRIND:-0}" != 1 ]; then
  BARE_BIN=$BUILT_BARE GATEHOUSE_BIN=${GATEHOUSE_BIN:-$ROOT/target/pgo-use/release/gatehouse} TARGETS="bare" \
    bash "$ROOT/benches/callgrind/run.sh"
fi
