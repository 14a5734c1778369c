#!/usr/bin/env bash
# The production build of gatehouse: profile-guided, from a training run on loopback.
# `make release` runs it, and so does deploy/Dockerfile: one script, so testing one tests both.
#
#   1. builds deploy/pgo-train (the training run: an upstream and a load generator, nothing
#      outside the crates) and gatehouse instrumented (`-Cprofile-generate`, target/pgo-generate);
#   2. trains: pgo-train runs that gatehouse on a temporary loopback config and sends it the
#      proxy path with each credential, forward-auth, the user API, refusals and logins, checking
#      every answer, then stops it so the profile is written;
#   3. merges the profile with rustup's llvm-profdata (the llvm-tools component of the toolchain
#      that builds, added when missing);
#   4. builds gatehouse with `-Cprofile-use` into target/pgo-use: target/pgo-use/release/gatehouse.
# Two release builds (fat LTO): ~25 minutes on 2 cores. Knobs: TRAIN_SECONDS (5, per workload),
# CARGO_FLAGS (e.g. --locked), OUT (target/pgo-use).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TRAIN_SECONDS=${TRAIN_SECONDS:-5}
OUT=${OUT:-$ROOT/target/pgo-use}
GENERATE=$ROOT/target/pgo-generate
read -r -a FLAGS <<<"${CARGO_FLAGS:-}"
say() { printf '\n== %s\n' "$*"; }

HOST=$(rustc -vV | awk '/^host:/ {print $2}')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata
if [ ! -x "$PROFDATA" ]; then
  if ! command -v rustup >/dev/null 2>&1; then
    echo "pgo-build: llvm-profdata is missing and there is no rustup to add it: install the"
    echo "toolchain with rustup (https://rustup.rs), or build without PGO: cargo build --release"
    exit 1
  fi
  say "rustup component add llvm-tools"
  rustup component add llvm-tools
fi

PROFILES=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-pgo.XXXXXX")
trap 'rm -rf "$PROFILES"' EXIT

say "building the training run and an instrumented gatehouse (target/pgo-generate)"
cargo build "${FLAGS[@]}" --release -p pgo-train
RUSTFLAGS="-Cprofile-generate=$PROFILES" \
  cargo build "${FLAGS[@]}" --release --bin gatehouse --target-dir "$GENERATE"

say "training (${TRAIN_SECONDS} s per workload)"
"$ROOT/target/release/pgo-train" "$GENERATE/release/gatehouse" "$TRAIN_SECONDS"
ls "$PROFILES"/*.profraw >/dev/null 2>&1 || { echo "pgo-build: no profile was written in $PROFILES"; exit 1; }
mkdir -p "$OUT"
"$PROFDATA" merge -o "$OUT/merged.profdata" "$PROFILES"

say "building gatehouse with the profile (target/pgo-use)"
RUSTFLAGS="-Cprofile-use=$OUT/merged.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
  cargo build "${FLAGS[@]}" --release --bin gatehouse --target-dir "$OUT"
echo "the production build: $OUT/release/gatehouse"
