#!/usr/bin/env bash
# Finds or installs axe-core (the npm package: Deque's accessibility rules, run in the tests'
# Chromium on every page) under the cargo target directory.
#
#   bash tests/support/get_axe.sh [DIR]    # default: ${CARGO_TARGET_DIR:-target}/axe
#
# Prints the path of axe.min.js on the last line of stdout. Safe to run from several processes
# at once (one installs under a lock, the others wait and reuse it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=4.10.3
DIR=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/axe}
case $DIR in /*) ;; *) DIR=$ROOT/$DIR ;; esac
AXE=$DIR/node_modules/axe-core/axe.min.js

ready() {
    [[ -f $DIR/.gatehouse-ready && $(cat "$DIR/.gatehouse-ready") == "$VERSION" && -s $AXE ]]
}

if ! ready; then
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock 9
    if ! ready; then
        command -v npm >/dev/null 2>&1 || {
            echo "get_axe.sh: the accessibility checks need npm to fetch axe-core" \
                "(Debian/Ubuntu: apt-get install npm)" >&2
            exit 1
        }
        rm -f "$DIR/.gatehouse-ready"
        npm install --silent --no-audit --no-fund --prefix "$DIR" "axe-core@$VERSION" >&2 ||
            { echo "get_axe.sh: npm install axe-core@$VERSION failed (is the npm registry reachable?)" >&2; exit 1; }
        [[ -s $AXE ]] || { echo "get_axe.sh: npm installed no $AXE" >&2; exit 1; }
        echo "$VERSION" >"$DIR/.gatehouse-ready"
    fi
fi
echo "$AXE"
