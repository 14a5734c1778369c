#!/usr/bin/env bash
# Fuzzes the user API of a live gatehouse with schemathesis against src/api/openapi.json:
# no 5xx, every status code documented, JSON Content-Type, every body matching its schema.
#
#   bash tests/schemathesis.sh            # needs target/debug/gatehouse (cargo build --bin gatehouse;
#                                         # $CARGO_TARGET_DIR/debug/gatehouse when that is set)
#   GATEHOUSE_BIN=/path/to/gatehouse SCHEMATHESIS_MAX_EXAMPLES=20 bash tests/schemathesis.sh
#
# Knobs: GATEHOUSE_BIN, SCHEMATHESIS_MAX_EXAMPLES (50 per operation), SCHEMATHESIS_SEED (1),
# SCHEMATHESIS_WORKERS (4), SCHEMATHESIS_DOC (another document), SCHEMATHESIS_REPORT_DIR (keep
# the JUnit reports there), SCHEMATHESIS_KEEP=1 (keep the work directory: config, server log,
# cassettes of every request and response).
#
# Two servers run on free loopback ports with throw-away data directories and are always
# killed on exit. Four passes, two on each server, the two chains side by side:
#   a: anonymous  every operation, no Authorization header
#   a: admin      the staff operations, a superuser's access token (after anonymous: it finds
#                 the users anonymous registered)
#   b: user       the non-staff operations, a normal user's access token
#   b: browser    the same operations, a second user's session cookie with its CSRF token and
#                 Origin (as a single-page app sends them), signing out left out
#   b: sign-out   DELETE /api/auth/session/ with that cookie (after browser: it ends the session)
#   b: delete     DELETE /api/auth/profile/delete/ with the user's token (last: it deactivates it)
# The last line is `schemathesis: N passed, M failed` (test cases, i.e. requests, over all
# passes); the exit status is non-zero when anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The binary `cargo build` (or `make test`) made: in CARGO_TARGET_DIR when that is set.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=${GATEHOUSE_BIN:-$TARGET/debug/gatehouse}
DOC=${SCHEMATHESIS_DOC:-$ROOT/src/api/openapi.json}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
WORKERS=${SCHEMATHESIS_WORKERS:-4}
REPORT_DIR=${SCHEMATHESIS_REPORT_DIR:-}
# 4.x runs on this Python (3.11) and has the check names used below.
ST_REQUIREMENT='schemathesis>=4.0,<5'
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

# Loopback only: no proxy may see (or forward) a request.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# The caller's own GATEHOUSE_* settings (GATEHOUSE_BIN included) must not leak into this
# server: start from none.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^GATEHOUSE_' || true)

[[ -x $BIN ]] || { echo "schemathesis.sh: no gatehouse binary at $BIN (cargo build --bin gatehouse)" >&2; exit 2; }

if ! python3 - <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(0 if m.version("schemathesis").split(".")[0] == "4" else 1)
PY
    echo "schemathesis.sh: installing $ST_REQUIREMENT" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$ST_REQUIREMENT"
fi
# CPython 3.11 keeps one AST recursion counter per interpreter, so two threads in `ast.parse`
# at once (hypothesis describes filter lambdas by parsing their source, in every worker) can
# fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905):
# the parses are taken one at a time.
st() {
    python3 -c '
import ast, sys, threading
from schemathesis.cli import schemathesis
parse, one_at_a_time = ast.parse, threading.Lock()
def serialized_parse(*args, **kwargs):
    with one_at_a_time:
        return parse(*args, **kwargs)
ast.parse = serialized_parse
sys.argv[0] = "st"
schemathesis()' "$@"
}
ST_VERSION=$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-schemathesis.XXXXXX")
SERVER_PIDS=()
CHAIN_PIDS=()
cleanup() {
    # A chain stops its own schemathesis run when told to (its TERM trap).
    for pid in "${CHAIN_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        # SIGTERM drains; do not wait longer than a few seconds for it.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n ${SCHEMATHESIS_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Throttling stays on (429 is documented), with limits a fuzzer from one address does not hit
# at once, so that the requests reach validation.
export GATEHOUSE_THROTTLE_REGISTRATIONS_PER_ADDRESS=100000
export GATEHOUSE_THROTTLE_LOGIN_FAILURES_PER_ADDRESS=100000
export GATEHOUSE_THROTTLE_LOGIN_FAILURES_PER_USERNAME=100000

ADMIN_PASSWORD="adm-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
USER_PASSWORD="usr-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
# The session endpoint's cookie (the default `[web] session_cookie`) and Django's CSRF cookie.
SESSION_COOKIE=__Host-gatehouse_session
CSRF_COOKIE=csrftoken

# post_field BASE PATH JSON FIELD: POST the JSON, print one field of the JSON answer (fails on
# any non-2xx).
post_field() {
    python3 - "$1$2" "$3" "$4" <<'PY'
import json, sys, urllib.request
url, body, field = sys.argv[1:]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
print(json.load(opener.open(req, timeout=30))[field])
PY
}

# session_cookies BASE USERNAME PASSWORD: sign in at /api/auth/session/, print the session
# cookie's value and the CSRF cookie's, on one line (fails on any non-2xx).
session_cookies() {
    python3 - "$1/api/auth/session/" "$2" "$3" "$SESSION_COOKIE" "$CSRF_COOKIE" <<'PY'
import http.cookies, json, sys, urllib.request
url, username, password, session_name, csrf_name = sys.argv[1:]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
body = json.dumps({"username": username, "password": password}).encode()
req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
jar = http.cookies.SimpleCookie()
for line in opener.open(req, timeout=30).headers.get_all("Set-Cookie") or []:
    jar.load(line)
print(jar[session_name].value, jar[csrf_name].value)
PY
}

# start_server NAME: a gatehouse of its own in $WORK/NAME with the superuser st-admin, the
# user st-user and the user st-browser signed in by a session cookie; sets BASE_<NAME>,
# USER_TOKEN_<NAME>, ADMIN_TOKEN_<NAME>, SESSION_<NAME> and CSRF_<NAME>.
start_server() {
    local name=$1 dir=$WORK/$1 port metrics_port pid base
    mkdir -p "$dir"
    port=$(free_port)
    metrics_port=$(free_port)
    while [[ $metrics_port == "$port" ]]; do metrics_port=$(free_port); done
    base=http://127.0.0.1:$port
    cat >"$dir/gatehouse.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics_port"
data_dir = "$dir/data"
threads = 2
pid_file = "$dir/gatehouse.pid"
upgrade_sock = "$dir/upgrade.sock"
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 3

[jwt]
access_lifetime_seconds = 3600

[log]
access_log = false
EOF
    GATEHOUSE_CONFIG=$dir/gatehouse.toml GATEHOUSE_SUPERUSER_PASSWORD=$ADMIN_PASSWORD \
        "$BIN" createsuperuser --noinput --username st-admin --email st-admin@example.com \
        </dev/null >"$dir/createsuperuser.log" 2>&1 \
        || { cat "$dir/createsuperuser.log" >&2; exit 2; }
    GATEHOUSE_CONFIG=$dir/gatehouse.toml "$BIN" serve </dev/null >"$dir/gatehouse.log" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill -0 "$pid" 2>/dev/null || { echo "gatehouse exited early:" >&2; cat "$dir/gatehouse.log" >&2; exit 2; }
        sleep 0.1
    done
    post_field "$base" /api/auth/register/ \
        "{\"username\": \"st-user\", \"email\": \"st-user@example.com\", \"password\": \"$USER_PASSWORD\"}" id >/dev/null
    printf -v "BASE_$name" '%s' "$base"
    printf -v "USER_TOKEN_$name" '%s' \
        "$(post_field "$base" /api/token/ "{\"username\": \"st-user\", \"password\": \"$USER_PASSWORD\"}" access)"
    printf -v "ADMIN_TOKEN_$name" '%s' \
        "$(post_field "$base" /api/token/ "{\"username\": \"st-admin\", \"password\": \"$ADMIN_PASSWORD\"}" access)"
    post_field "$base" /api/auth/register/ \
        "{\"username\": \"st-browser\", \"email\": \"st-browser@example.com\", \"password\": \"$USER_PASSWORD\"}" id >/dev/null
    local cookies
    cookies=$(session_cookies "$base" st-browser "$USER_PASSWORD")
    printf -v "SESSION_$name" '%s' "${cookies% *}"
    printf -v "CSRF_$name" '%s' "${cookies#* }"
}
start_server a
start_server b

echo "schemathesis $ST_VERSION against $BASE_a and $BASE_b ($MAX_EXAMPLES examples per operation)"

# run BASE NAME [st options...]: one schemathesis pass, reported as JUnit (per operation) and as
# a VCR cassette (every request and response, with the checks' verdicts; Authorization
# filtered). A failed pass leaves its name in $FAILED_DIR.
REPORTS=${REPORT_DIR:-$WORK/reports}
CASSETTES=$WORK/cassettes
FAILED_DIR=$WORK/failed
mkdir -p "$REPORTS" "$CASSETTES" "$FAILED_DIR"
# A pass whose reports hold no failed case failed inside schemathesis itself (seen: a
# hypothesis FlakyFailure from a CPython AST recursion error). It is run once more with the next
# seed; a failed case, or a second internal error, still fails the run. A failed check shows as
# a <failure> in the JUnit report (a response that violates its schema is not marked in the
# cassette, whose statuses are the transport's), or as a failed status in the cassette.
has_failed_case() { # NAME
    grep -q '<failure' "$REPORTS/$1.xml" 2>/dev/null ||
        grep -E "^  status: '[A-Z]+'$" "$CASSETTES/$1.yaml" 2>/dev/null | grep -vqE "'(SUCCESS|SKIP)'"
}
run() {
    local base=$1 name=$2
    shift 2
    if ! run_once "$base" "$name" "${SCHEMATHESIS_SEED:-1}" "$@"; then
        if has_failed_case "$name"; then
            touch "$FAILED_DIR/$name"
        else
            echo "=== pass $name: schemathesis itself failed without a failing case; once more"
            run_once "$base" "$name" "$(( ${SCHEMATHESIS_SEED:-1} + 1 ))" "$@" || touch "$FAILED_DIR/$name"
        fi
    fi
}
ST_PID=
run_once() {
    local base=$1 name=$2 seed=$3
    shift 3
    echo "=== pass: $name (seed $seed)"
    # In the background, so that a signal to the chain is handled at once (see its trap).
    st run "$DOC" --url "$base" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --workers "$WORKERS" \
        --request-timeout 20 \
        --max-redirects 0 \
        --generation-database none \
        --seed "$seed" \
        --no-color \
        --report junit,vcr --report-dir "$REPORTS" \
        --report-junit-path "$REPORTS/$name.xml" --report-vcr-path "$CASSETTES/$name.yaml" \
        "$@" &
    ST_PID=$!
    local status=0
    wait "$ST_PID" || status=$?
    ST_PID=
    return "$status"
}
# chain NAME FUNCTION: FUNCTION's passes one after the other, in the background, into a log.
chain() {
    (
        trap '[[ -z $ST_PID ]] || kill "$ST_PID" 2>/dev/null; exit 130' INT TERM
        "$2"
    ) >"$WORK/chain-$1.log" 2>&1 &
    CHAIN_PIDS+=("$!")
}

ADMIN_PATHS='^/api/auth/admin/'
DELETE_PATH='^/api/auth/profile/delete/$'
NOT_USER_PATHS='^/api/auth/(admin/|profile/delete/$)'
SESSION_PATH='^/api/auth/session/$'
# Two chains of passes, each on its own server, side by side: one schemathesis run keeps about
# one core busy. Within a chain the passes keep the order that matters:
#   a: anonymous (registers users), then admin (which finds them to list, change and delete)
#   b: user, browser, sign-out (which ends browser's session), then delete (which soft-deletes
#      the user: last)
passes_a() {
    run "$BASE_a" anonymous
    run "$BASE_a" admin -H "Authorization: Bearer $ADMIN_TOKEN_a" --include-path-regex "$ADMIN_PATHS"
}
passes_b() {
    run "$BASE_b" user -H "Authorization: Bearer $USER_TOKEN_b" \
        --exclude-path-regex "$NOT_USER_PATHS"
    local browser=(-H "Cookie: $SESSION_COOKIE=$SESSION_b; $CSRF_COOKIE=$CSRF_b"
        -H "X-CSRFToken: $CSRF_b" -H "Origin: $BASE_b")
    run "$BASE_b" browser "${browser[@]}" --exclude-path-regex "$NOT_USER_PATHS" \
        --exclude-operation-id session_sign_out
    run "$BASE_b" sign-out "${browser[@]}" --include-operation-id session_sign_out
    run "$BASE_b" delete -H "Authorization: Bearer $USER_TOKEN_b" --include-path-regex "$DELETE_PATH" --include-method DELETE
}
echo "=== chains a (anonymous, admin) and b (user, browser, sign-out, delete) side by side; their output follows"
chain a passes_a
chain b passes_b
for pid in "${CHAIN_PIDS[@]}"; do wait "$pid" || true; done
CHAIN_PIDS=()
cat "$WORK/chain-a.log" "$WORK/chain-b.log"

FAILED_PASSES=()
for f in "$FAILED_DIR"/*; do
    [[ -e $f ]] && FAILED_PASSES+=("$(basename "$f")")
done
for i in 0 1; do
    name=$([[ $i == 0 ]] && echo a || echo b)
    log=$WORK/$name/gatehouse.log
    if ! kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null; then
        echo "gatehouse $name died during the run:" >&2
        tail -n 50 "$log" >&2
        FAILED_PASSES+=("server-$name-died")
    fi
    if grep -qiE 'panicked|RUST_BACKTRACE' "$log"; then
        echo "gatehouse $name panicked during the run:" >&2
        grep -iE -A5 'panicked' "$log" >&2 || true
        FAILED_PASSES+=("panic-$name")
    fi
done

# Count test cases (one request each) from the cassettes: each records the verdict of the checks.
read -r PASSED FAILED < <(python3 - "$CASSETTES" <<'PY'
import glob, re, sys
passed = failed = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^  status: '([A-Z]+)'$", line)
            if m:
                if m.group(1) == "SUCCESS":
                    passed += 1
                elif m.group(1) != "SKIP":
                    failed += 1
print(passed, failed)
PY
)
# A pass that failed without a failing test case (schema error, crash): never report 0 failed.
if [[ ${#FAILED_PASSES[@]} -gt 0 && $FAILED -eq 0 ]]; then
    FAILED=${#FAILED_PASSES[@]}
fi
echo "schemathesis: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 && ${#FAILED_PASSES[@]} -eq 0 ]]
