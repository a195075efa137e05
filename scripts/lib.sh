# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run).

# apt_install PKG...: Debian packages, without starting any service they ship.
apt_install() {
    local sudo="" created_policy=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    # policy-rc.d answering 101 stops Debian's maintainer scripts from starting the service.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
    [ -n "$created_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
    return 0
}

# use_python NAME: set PYTHON to an interpreter pip may install into. NAME is PYTHON
# (default python3), which must be 3.11+. Inside a virtualenv, or on a Python that allows
# installs, that is PYTHON itself; on one that refuses them (Debian's "externally managed"
# python3) or has no pip, a virtualenv in VENV (default ./.venv), made once, installing
# Debian's python3.X-venv when the venv module is missing.
use_python() {
    local name="$1"
    PYTHON="${PYTHON:-python3}"
    VENV="${VENV:-.venv}"
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "$name: $PYTHON not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
        exit 1
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "$name: Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)" >&2
        exit 1
    fi
    if "$PYTHON" - <<'EOF'
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
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "$name: $PYTHON refuses pip installs; creating a virtualenv in $VENV"
        if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            local minor
            minor="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            if ! command -v apt-get >/dev/null 2>&1; then
                echo "$name: $PYTHON cannot create a virtualenv (its venv module is missing)" >&2
                exit 1
            fi
            # Debian splits venv (and ensurepip) out of python3.
            echo "$name: installing Debian's python${minor}-venv"
            apt_install "python${minor}-venv"
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    PYTHON="$VENV/bin/python"
}
