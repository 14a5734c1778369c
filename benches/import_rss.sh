#!/usr/bin/env bash
# Peak memory and time of `gatehouse import` on generated dumps of several sizes (benches/README.md,
# "Importing a large dump"). Each size gets a fresh data directory; the dump is made by
# benches/gen_dump.py and kept in the work directory between runs.
#
#   cargo build --release --bin gatehouse
#   bash benches/import_rss.sh 10000 200000 1000000     # sizes; default: 10000 200000
#
# Knobs: GATEHOUSE_BIN (target/release/gatehouse), WORK (/tmp/gatehouse-import-rss).
# Prints one line per size: users, dump size, peak RSS, wall time, and each pass's time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}
WORK=${WORK:-/tmp/gatehouse-import-rss}
[[ -x $BIN ]] || { echo "import_rss.sh: no binary at $BIN (cargo build --release --bin gatehouse)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "import_rss.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
mkdir -p "$WORK"
while read -r var; do unset "$var"; done < <(compgen -e | grep '^GATEHOUSE_' || true)

sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 200000)
printf '%-9s %-9s %-9s %-8s %s\n' users dump peak_rss wall passes
for n in "${sizes[@]}"; do
    dump=$WORK/users-$n.json
    [[ -s $dump ]] || python3 "$ROOT/benches/gen_dump.py" "$n" >"$dump"
    rm -rf "$WORK/data-$n"
    printf '[server]\ndata_dir = "%s"\n' "$WORK/data-$n" >"$WORK/gatehouse-$n.toml"
    /usr/bin/time -f '%M %e' -o "$WORK/time-$n" \
        "$BIN" import -c "$WORK/gatehouse-$n.toml" "$dump" >"$WORK/stdout-$n" 2>"$WORK/stderr-$n"
    grep -q "^imported $n users;" "$WORK/stdout-$n" || { cat "$WORK/stdout-$n" "$WORK/stderr-$n" >&2; exit 1; }
    read -r rss wall <"$WORK/time-$n"
    passes=$(grep -oE '(checking|writing) done: .* in [0-9.]+ s' "$WORK/stderr-$n" |
        sed -E 's/^(checking|writing) done: .* in ([0-9.]+) s$/\1 \2 s/' | paste -sd, -)
    printf '%-9s %-9s %-9s %-8s %s\n' "$n" "$(( $(stat -Lc %s "$dump") / 1000000 )) MB" "$((rss / 1024)) MiB" "${wall} s" "$passes"
done
