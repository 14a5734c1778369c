# shellcheck shell=bash
# Shell pieces shared by benches/load/run.sh and benches/scale/run.sh (sourced, not run):
# tool installation, a work dir whose processes all stop on exit, free loopback ports, and
# waiting for a listener.

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
    p=$((20000 + RANDOM % 30000))
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
