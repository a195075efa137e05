#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs pytest.
# Tests start their own redis-server processes on free loopback ports; the
# system's Redis service is never started.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

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

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
fi
# The admin page's browser tests drive Debian's chromium with Playwright
# (never `playwright install`: it downloads its own browser).
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium fonts-liberation
fi

"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]"
"$PYTHON" scripts/fetch_django_tests.py
exec "$PYTHON" -m pytest "$@"
