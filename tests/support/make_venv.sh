#!/usr/bin/env bash
# Finds or creates the throwaway Python virtualenv with real Django, DRF and simplejwt that the
# switch-over tests mint tokens and password hashes with (tests/support/django_tool.py).
#
#   bash tests/support/make_venv.sh [VENV_DIR]    # default: ${CARGO_TARGET_DIR:-target}/test-venv
#
# Prints the venv's python on the last line of stdout. Safe to run from several processes at
# once: one builds under an exclusive lock, the others wait for it and reuse the result. A venv
# is reused only when it was completed for exactly the current requirements file.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
REQUIREMENTS=$HERE/django-requirements.txt
VENV=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/test-venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PYTHON=${PYTHON:-python3}

fail() {
    echo "make_venv.sh: $*" >&2
    exit 1
}

want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
ready() {
    [[ -f $VENV/.gatehouse-ready && $(cat "$VENV/.gatehouse-ready") == "$want" ]] &&
        "$VENV/bin/python" -c 'import django, rest_framework_simplejwt, bcrypt, argon2, aiosmtpd, pyotp' 2>/dev/null
}

if ! ready; then
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    flock 9
    # Another process may have finished it while this one waited.
    if ! ready; then
        command -v "$PYTHON" >/dev/null 2>&1 ||
            fail "no $PYTHON: install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" >&2 ||
            fail "'$PYTHON -m venv' failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2 ||
            fail "pip could not install $REQUIREMENTS into $VENV: it needs PyPI (the network, or PIP_INDEX_URL pointing at a mirror)"
        "$VENV/bin/python" -c 'import django, rest_framework_simplejwt, bcrypt, argon2, aiosmtpd, pyotp' ||
            fail "the packages of $REQUIREMENTS do not import in $VENV"
        echo "$want" >"$VENV/.gatehouse-ready"
    fi
fi
echo "$VENV/bin/python"
