#!/usr/bin/env bash
# HTTPS beside nginx, one command: `bash benches/tls/run.sh`.
#
# gatehouse (release build, `threads = 1`, access log off, a public route) and nginx (one
# worker, `listen ssl http2`, proxy_pass with upstream keep-alive) terminate TLS with the same
# certificate (ECDSA P-256 from a local CA made here with openssl) in front of the same nginx
# upstream (`return 200`) on 127.0.0.1. Measured, in interleaved rounds:
#   h1 keep-alive    wrk -t1 -cCONNS over HTTPS/1.1
#   h2 keep-alive    h2load -cCONNS -mSTREAMS (HTTP/2 by ALPN)
#   new handshakes   wrk with `Connection: close`: one full TLS handshake per request
# req/s and the terminator's CPU time per request (user + system from /proc), medians of the
# rounds and the gatehouse/nginx ratios. Knobs: DURATION=8 CONNS=16 STREAMS=10 ROUNDS=3,
# GATEHOUSE_BIN=...
set -euo pipefail
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-10}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
need wrk nginx curl openssl
command -v h2load >/dev/null 2>&1 || {
  say "installing nghttp2-client (h2load)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nghttp2-client >/dev/null
}

gatehouse_bin

work_dir tls
for v in UP GH GHS GHM NG; do free_port "$v"; done
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
  -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
  -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days 2 -extfile ext 2>/dev/null
cd "$ROOT"

mkdir -p "$WORK/upstream/logs" "$WORK/nginx/logs"
common_http="client_body_temp_path $WORK/tb; proxy_temp_path $WORK/tp; fastcgi_temp_path $WORK/tf;
  uwsgi_temp_path $WORK/tu; scgi_temp_path $WORK/ts; access_log off; keepalive_requests 1000000;"
cat >"$WORK/upstream/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process on;
events { worker_connections 4096; }
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
http {
  $common_http
  server {
    listen 127.0.0.1:$UP backlog=4096;
    location / { default_type text/plain; return 200 "hello from upstream\n"; }
  }
}
CONF
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process on;
events { worker_connections 4096; }
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
http {
  $common_http
  upstream app { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG ssl http2 backlog=4096;
    ssl_certificate $WORK/server.pem;
    ssl_certificate_key $WORK/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
cat >"$WORK/gatehouse.toml" <<CONF
[server]
listen = "127.0.0.1:$GH"
tls_listen = "127.0.0.1:$GHS"
tls_cert = "$WORK/server.pem"
tls_key = "$WORK/server.key"
metrics_listen = "127.0.0.1:$GHM"
data_dir = "$WORK/data"
threads = 1
pid_file = "$WORK/gatehouse.pid"
upgrade_sock = "$WORK/upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[log]
access_log = false
level = "warn"
[[routes]]
prefix = "/"
upstreams = ["127.0.0.1:$UP"]
auth = "public"
CONF

nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
"$GATEHOUSE_BIN" serve -c "$WORK/gatehouse.toml" >"$WORK/gatehouse.out" 2>"$WORK/gatehouse.err" &
GH_PID=$!
PIDS+=("$GH_PID")
wait_http "http://127.0.0.1:$GHM/readyz"
CA=(--cacert "$WORK/ca.pem")
for _ in $(seq 100); do
  [ "$(curl -s "${CA[@]}" -o /dev/null -w '%{http_code}' "https://localhost:$NG/" || true)" = 200 ] && break
  sleep 0.1
done
for url in "https://localhost:$GHS/x" "https://localhost:$NG/x"; do
  v=$(curl -sS --http2 "${CA[@]}" -o /dev/null -w '%{http_version} %{http_code}' "$url")
  [ "$v" = "2 200" ] || { echo "$url over h2: $v"; exit 1; }
done
# nginx's worker: the child of the master that listens on NG.
NG_MASTER=$(cat "$WORK/nginx/nginx.pid" 2>/dev/null || true)
for _ in $(seq 50); do [ -n "$NG_MASTER" ] && break; sleep 0.1; NG_MASTER=$(cat "$WORK/nginx/nginx.pid" 2>/dev/null || true); done
NG_PID=$(pgrep -P "$NG_MASTER" | head -1)
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS=$WORK/results.tsv
: >"$RESULTS"

record() { # LABEL PID BEFORE REQS RPS
  local after
  after=$(cpu "$2")
  printf '%s\t%s\t%s\n' "$1" "$5" "$(awk -v t=$((after - $3)) -v n="$4" -v hz="$TICK" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')" >>"$RESULTS"
  printf '  %-14s %10s req/s  CPU %s us/req\n' "$1" "$5" "$(tail -1 "$RESULTS" | cut -f3)"
}

wrk_run() { # LABEL PID PORT [header]
  local out=$WORK/wrk.$1.txt before reqs rps extra=()
  [ -n "${4:-}" ] && extra=(-H "$4")
  before=$(cpu "$2")
  wrk -t 1 -c "$CONNS" -d "${DURATION}s" "${extra[@]}" "https://localhost:$3/x" >"$out" 2>&1
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  if grep -q "Non-2xx\|Socket errors" "$out"; then
    grep "Non-2xx\|Socket errors" "$out" | sed "s/^/  $1: /"
  fi
  record "$1" "$2" "$before" "$reqs" "$rps"
}

h2_run() { # LABEL PID PORT
  local out=$WORK/h2load.$1.txt before reqs rps
  before=$(cpu "$2")
  h2load -c "$CONNS" -m "$STREAMS" -D "$DURATION" --warm-up-time=1 "https://localhost:$3/x" >"$out" 2>&1
  reqs=$(awk '/^requests:/ {print $8}' "$out")
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$out")
  grep -q "h2" "$out" || { echo "$1: not h2"; cat "$out"; exit 1; }
  record "$1" "$2" "$before" "$reqs" "$rps"
}

say "warm-up"
wrk -t 1 -c "$CONNS" -d 2s "https://localhost:$GHS/x" >/dev/null
wrk -t 1 -c "$CONNS" -d 2s "https://localhost:$NG/x" >/dev/null
for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  wrk_run gh-h1 "$GH_PID" "$GHS"
  wrk_run ng-h1 "$NG_PID" "$NG"
  h2_run gh-h2 "$GH_PID" "$GHS"
  h2_run ng-h2 "$NG_PID" "$NG"
  wrk_run gh-handshake "$GH_PID" "$GHS" "Connection: close"
  wrk_run ng-handshake "$NG_PID" "$NG" "Connection: close"
done

median() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$RESULTS" | sort -g |
  awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
say "medians of $ROUNDS rounds (one thread / one worker each, $CONNS connections, ${DURATION}s each)"
printf '| workload | gatehouse req/s | nginx req/s | req/s ratio | gatehouse CPU us/req | nginx CPU us/req | CPU ratio |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for w in h1 h2 handshake; do
  gr=$(median "gh-$w" 2); nr=$(median "ng-$w" 2); gc=$(median "gh-$w" 3); nc=$(median "ng-$w" 3)
  printf '| %s | %s | %s | %.2fx | %s | %s | %.2fx |\n' "$w" "$gr" "$nr" \
    "$(awk -v a="$gr" -v b="$nr" 'BEGIN {print a / b}')" "$gc" "$nc" \
    "$(awk -v a="$gc" -v b="$nc" 'BEGIN {print a / b}')"
done
