#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, checks the code, then
# runs pytest.
#
#   bash scripts/test.sh                 # ruff, mypy --strict, then the whole suite
#   bash scripts/test.sh -x -k cluster   # extra arguments go to pytest
#   bash scripts/test.sh -m "not redis"  # the layer that needs no Redis (seconds)
#   LINT=0 bash scripts/test.sh ...      # skip ruff and mypy
#   bash scripts/test.sh --matrix -t ci  # the versions matrix (nox; see noxfile.py)
#
# Needs Python 3.11+ (PYTHON=... to choose). Inside a virtualenv it installs there; on a
# system Python that refuses pip installs (Debian's "externally managed" Python) it creates
# ./.venv first (VENV=path to put it elsewhere), installing Debian's python3-venv if needed.
# Tests start their own redis-server processes on free loopback ports; the system's Redis
# service is never started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

# Installs Debian packages without starting any service they ship.
apt_install() {
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    # policy-rc.d answering 101 stops Debian's maintainer scripts from starting the service.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
    [ -n "$created_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
    return 0
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "test: $PYTHON not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "test: Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
fi
# The admin page's browser tests drive Debian's chromium with Playwright
# (never `playwright install`: it downloads its own browser).
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium fonts-liberation
fi

# Use the interpreter if pip may install into it, else a virtualenv of its own.
if ! "$PYTHON" - <<'EOF'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
try:
    import pip  # noqa: F401
except ImportError:
    sys.exit(1)
sys.exit(0 if in_venv or not managed else 1)
EOF
then
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "test: $PYTHON refuses pip installs; creating a virtualenv in $VENV"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            # Debian splits venv (and ensurepip) out of python3: python3.X-venv.
            minor="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            echo "test: installing Debian's python${minor}-venv"
            apt_install "python${minor}-venv"
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    PYTHON="$VENV/bin/python"
fi

if [[ "${1:-}" == "--matrix" ]]; then
    shift
    "$PYTHON" -m pip install -q --disable-pip-version-check "nox>=2025.2"
    exec "$PYTHON" -m nox "$@"
fi

"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test,lint]"
"$PYTHON" scripts/fetch_django_tests.py
"$PYTHON" -c 'import sys, django; print("test: Python", sys.version.split()[0], "Django", django.get_version())'
if [[ "${LINT:-1}" != "0" ]]; then
    "$PYTHON" -m ruff check .
    "$PYTHON" -m ruff format --check .
    "$PYTHON" -m mypy django_creator_cache
fi
exec "$PYTHON" -m pytest "$@"
