#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs pytest.
# Tests start their own redis-server processes on free loopback ports; the
# system's Redis service is never started.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
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
        redis-server redis-tools >/dev/null
    [ -n "$created_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]"
"$PYTHON" scripts/fetch_django_tests.py
exec "$PYTHON" -m pytest "$@"
