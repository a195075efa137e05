#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, checks the code, builds
# the documentation site, then runs pytest.
#
#   bash scripts/test.sh                 # ruff, mypy --strict, the docs build, the whole suite
#   bash scripts/test.sh -x -k cluster   # extra arguments go to pytest
#   bash scripts/test.sh -m "not redis"  # the layer that needs no Redis (no server)
#   LINT=0 bash scripts/test.sh ...      # skip ruff, mypy and the docs build
#   bash scripts/test.sh --matrix -t ci  # the versions matrix (nox; see noxfile.py)
#
# Needs Python 3.11+ (PYTHON=... to choose). Inside a virtualenv it installs there; on a
# system Python that refuses pip installs (Debian's "externally managed" Python) it creates
# ./.venv first (VENV=path to put it elsewhere), installing Debian's python3.X-venv if
# needed (scripts/lib.sh).
# Tests start their own redis-server processes on free loopback ports; the system's Redis
# service is never started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
use_python test

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
fi
# The admin page's browser tests drive Debian's chromium with Playwright
# (never `playwright install`: it downloads its own browser).
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium fonts-liberation
fi

if [[ "${1:-}" == "--matrix" ]]; then
    shift
    "$PYTHON" -m pip install -q --disable-pip-version-check "nox>=2025.2"
    exec "$PYTHON" -m nox "$@"
fi

"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test,lint,docs]"
"$PYTHON" scripts/fetch_django_tests.py
"$PYTHON" -c 'import sys, django; print("test: Python", sys.version.split()[0], "Django", django.get_version())'
if [[ "${LINT:-1}" != "0" ]]; then
    "$PYTHON" -m ruff check .
    "$PYTHON" -m ruff format --check .
    "$PYTHON" -m mypy django_creator_cache
    # The documentation site: a broken link, anchor or README snippet fails. Not --quiet:
    # it silences the warnings --strict counts. Built in a temporary directory.
    site_dir="$(mktemp -d)"
    NO_MKDOCS_2_WARNING=1 "$PYTHON" -m mkdocs build --strict --site-dir "$site_dir"
    rm -rf "$site_dir"
fi
exec "$PYTHON" -m pytest "$@"
