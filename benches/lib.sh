# shellcheck shell=bash
# Shell pieces shared by the scripts under benches/ (sourced, not run): tool installation, a
# work dir whose processes all stop on exit, free loopback ports, waiting for a listener, and
# the nginx every proxy benchmark forwards to.

say() { printf '\n== %s\n' "$*"; }

# need TOOL...: installs the missing ones as Debian packages (taskset comes in util-linux).
need() {
  local missing=() pkgs=() t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]})) || return 0
  for t in "${missing[@]}"; do
    case $t in taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;; esac
  done
  say "installing ${pkgs[*]} (Debian packages)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# work_dir NAME: sets WORK to a new temp dir; every pid added to PIDS is stopped on exit
# (SIGINT, then SIGKILL after 5 s) and the dir removed unless KEEP=1.
PIDS=()
work_dir() {
  WORK=$(mktemp -d "/tmp/gatehouse-$1.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}

USED_PORTS=" "
free_port() { # VAR: a port nobody listens on, distinct from the ones already handed out
  local p
  while :; do
    # Below Linux's ephemeral range (32768+), so no outgoing connection holds it.
    p=$((20000 + RANDOM % 12000))
    case $USED_PORTS in *" $p "*) continue ;; esac
    if ! ss -Htln "sport = :$p" | grep -q .; then
      USED_PORTS+="$p "
      printf -v "$1" '%s' "$p"
      return
    fi
  done
}

wait_http() { # URL [expected status, 200] [tries of 0.1 s, 100]
  local code=000
  for _ in $(seq "${3:-100}"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [ "$code" = "${2:-200}" ] && return 0
    sleep 0.1
  done
  echo "not answering: $1 (last status $code)"
  exit 1
}

# nginx_head NAME: the first lines of an nginx.conf for one worker whose pid, logs and
# temp files live in $WORK/NAME (make $WORK/NAME/logs first).
nginx_head() {
  cat <<EOF
worker_processes 1; daemon off; master_process on;
events { worker_connections 4096; }
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
EOF
}

# nginx_http_common NAME: the lines every benchmark nginx's http block starts with.
nginx_http_common() {
  cat <<EOF
  client_body_temp_path $WORK/$1/tmp_body; proxy_temp_path $WORK/$1/tmp_proxy;
  fastcgi_temp_path $WORK/$1/tmp_fcgi; uwsgi_temp_path $WORK/$1/tmp_uwsgi; scgi_temp_path $WORK/$1/tmp_scgi;
  access_log off;
  keepalive_requests 1000000;
EOF
}

# upstream_nginx PORT: writes $WORK/upstream/nginx.conf, the upstream every proxy under test
# forwards to: `return 200` with a short body on 127.0.0.1:PORT.
upstream_nginx() {
  mkdir -p "$WORK/upstream/logs"
  {
    nginx_head upstream
    echo "http {"
    nginx_http_common upstream
    cat <<EOF
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location / { default_type text/plain; return 200 "hello from upstream\n"; }
  }
}
EOF
  } >"$WORK/upstream/nginx.conf"
}

# gatehouse_bin: sets GATEHOUSE_BIN to the release build of this tree (built, a no-op when
# fresh) unless the caller gave one.
gatehouse_bin() {
  if [ -z "${GATEHOUSE_BIN:-}" ]; then
    say "cargo build --release --bin gatehouse"
    (cd "$ROOT" && cargo build --release --bin gatehouse)
    GATEHOUSE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/gatehouse
  fi
}

# proxy_bins PROFILE PREFIX: sets ${PREFIX}GATEHOUSE_BIN and ${PREFIX}BARE_BIN to gatehouse and
# benches/bare_pingora.rs built with cargo profile PROFILE (`release`, the shipped one, or
# `untuned`: the profile before issue 17), building what the caller did not give.
proxy_bins() {
  local profile=$1 gvar=${2}GATEHOUSE_BIN bvar=${2}BARE_BIN built
  if [ -z "${!gvar:-}" ] || [ -z "${!bvar:-}" ]; then
    say "cargo build --profile $profile --bin gatehouse --bench bare_pingora"
    built=$(cd "$ROOT" && cargo build --profile "$profile" --bin gatehouse --bench bare_pingora \
      --message-format=json 2>/dev/null |
      jq -r 'select(.reason == "compiler-artifact" and .target.name == "bare_pingora") | .executable')
    [ -n "${!gvar:-}" ] || printf -v "$gvar" '%s' "${CARGO_TARGET_DIR:-$ROOT/target}/$profile/gatehouse"
    [ -n "${!bvar:-}" ] || printf -v "$bvar" '%s' "$built"
  fi
  local bin
  for bin in "${!gvar}" "${!bvar}"; do
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
      (cd "$ROOT" && cargo build --profile "$profile" --bin gatehouse --bench bare_pingora) # shows why
      echo "not an executable: '$bin' (cargo build --profile $profile --bin gatehouse --bench bare_pingora)"
      exit 1
    fi
  done
}

# need_oha: the open-loop load generator oha (crates.io) on PATH, installed with cargo when
# missing (a few minutes, once).
need_oha() {
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v oha >/dev/null 2>&1 && return 0
  say "installing oha (cargo install oha --locked)"
  cargo install oha --locked
}

# haproxy_jwt_cfg PORT SECRET UPSTREAM_PORT: writes $WORK/haproxy.cfg, HAProxy with one thread
# refusing (401) any request without an HS256 token signed with SECRET (`jwt_verify`: the
# signature only), forwarding the rest to the upstream with connection reuse.
haproxy_jwt_cfg() {
  cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
  pidfile $WORK/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$1
  http-request deny deny_status 401 unless { req.hdr(authorization),word(2," "),jwt_verify("HS256","$2") -m int 1 }
  default_backend be
backend be
  http-reuse always
  server up 127.0.0.1:$3 maxconn 1000
CONF
}

# nginx_proxy_http PORT UPSTREAM_PORT: the http block of the plain nginx reverse proxy (upstream
# keep-alive), for an nginx.conf whose head the caller wrote.
nginx_proxy_http() {
  echo "http {"
  nginx_http_common nginx
  cat <<CONF
  upstream up { server 127.0.0.1:$2; keepalive 64; }
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
}

# gatehouse_server NAME PORT METRICS_PORT: the [server] table every benchmark gatehouse starts
# with (one worker thread, files under $WORK/NAME*, no grace period); the caller may add more
# [server] keys right after it, then its other tables.
gatehouse_server() {
  cat <<CONF
[server]
listen = "127.0.0.1:$2"
metrics_listen = "127.0.0.1:$3"
data_dir = "$WORK/$1-data"
threads = 1
pid_file = "$WORK/$1.pid"
upgrade_sock = "$WORK/$1-upgrade.sock"
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
CONF
}

# pin_cpus: with PIN=1 (the default) on two or more CPUs, ON_PROXY_CPU runs the proxy under
# test on CPU 1 and ON_LOAD_CPU the load (wrk, the upstream, a database) on CPU 0; otherwise
# both are empty.
pin_cpus() {
  ON_PROXY_CPU=()
  ON_LOAD_CPU=()
  if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    ON_PROXY_CPU=(taskset -c 1)
    ON_LOAD_CPU=(taskset -c 0)
  fi
}

# as_pg CMD...: runs CMD as the postgres user when we are root (initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# start_postgres PORT: a throwaway PostgreSQL cluster in $WORK/pg on 127.0.0.1:PORT (on the
# load CPU: call pin_cpus first), with an empty database `gatehouse`. Sets PG_BIN and PG_PID
# (the postmaster itself, runuser being its parent: stopped on exit, its CPU measurable) and
# exports GATEHOUSE_STORE_URL.
start_postgres() {
  local port=$1
  PG_BIN=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql"; exit 1; }
  chmod 755 "$WORK"
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg"
  as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "${ON_LOAD_CPU[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$WORK/pg" >"$WORK/pg.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' postgres >/dev/null 2>&1 && break; sleep 0.1; done
  PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
  PIDS+=("$PG_PID")
  "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE gatehouse' postgres
  export GATEHOUSE_STORE_URL="postgres://postgres@127.0.0.1:$port/gatehouse"
}
