#!/usr/bin/env bash
# Re-vendors a patched Pingora crate at a new release: `bash vendor/update-pingora.sh 0.9.2`.
# Fetches each crate named below at VERSION from crates.io, replaces vendor/<crate> with the
# pristine copy, and applies vendor/patches/<crate>-*.patch in order; a patch that no longer
# applies stops the script, naming it (then port it by hand, or drop it if upstream has it).
# Afterwards: set pingora's version in Cargo.toml, `cargo update -p pingora`, and run the test
# that proves the patch is in use (`cargo test --lib pingora_patch`).
set -euo pipefail
VERSION=${1:?usage: bash vendor/update-pingora.sh VERSION (e.g. 0.9.2)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRATES=(pingora-http)
for crate in "${CRATES[@]}"; do
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "== $crate $VERSION: fetching the pristine crate from crates.io"
  curl -fsSL "https://crates.io/api/v1/crates/$crate/$VERSION/download" -o "$tmp/crate.tar.gz"
  tar -xzf "$tmp/crate.tar.gz" -C "$tmp"
  rm -f "$tmp/$crate-$VERSION/.cargo_vcs_info.json"
  for p in "$ROOT"/vendor/patches/"$crate"-*.patch; do
    echo "== applying $(basename "$p")"
    patch --quiet --forward --batch -p1 -d "$tmp/$crate-$VERSION" <"$p" ||
      { echo "update-pingora: $(basename "$p") does not apply to $crate $VERSION"; exit 1; }
  done
  rm -rf "$ROOT/vendor/$crate"
  mv "$tmp/$crate-$VERSION" "$ROOT/vendor/$crate"
  rm -rf "$tmp"
  trap - EXIT
  echo "== vendor/$crate is $crate $VERSION with its patches"
done
