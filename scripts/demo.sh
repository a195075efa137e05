#!/usr/bin/env bash
# Run the example project locally: install, migrate, load the demo data, create the
# demo admin, serve.
#
#   bash scripts/demo.sh                 # http://127.0.0.1:8000/
#   PORT=8001 bash scripts/demo.sh --noreload
#
# Needs Python 3.11+ and nothing else: with no REDIS_URL (or REDIS_HOST) set,
# the cache is an embedded in-process fakeredis, so no redis-server is needed.
# Inside a virtualenv it installs there; on a system Python that refuses pip
# installs (Debian's "externally managed" Python) it creates ./.venv first
# (VENV=path to put it elsewhere). Extra arguments go to runserver.
# Local use only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${PORT:-8000}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
use_python demo

echo "demo: installing django-creator-cache with the embedded extra"
"$PYTHON" -m pip install --quiet -e ".[embedded]"

"$PYTHON" manage.py migrate --noinput

# Demo data: thousands of rows, fixed seed; skipped when already loaded.
"$PYTHON" manage.py load_demo_data

# The demo staff user (superuser demo/demo), for local use only.
"$PYTHON" manage.py create_demo_user

# Warming only helps a cache that outlives this command: a real server, not the embedded one.
if [[ -n "${REDIS_URL:-}${REDIS_HOST:-}" ]]; then
    "$PYTHON" manage.py cache_warm
fi

if [[ -n "${REDIS_URL:-}${REDIS_HOST:-}" ]]; then
    CACHE_LINE="Cache:      the Redis server of REDIS_URL/REDIS_HOST (see the banner below)"
else
    CACHE_LINE="Cache:      embedded in-process fakeredis (no Redis needed; data lost on exit)"
fi

cat <<EOF

  Dashboard:  http://127.0.0.1:${PORT}/
  Campaigns:  http://127.0.0.1:${PORT}/campaigns/     (curl -I twice: X-Cache MISS, then HIT)
  API:        curl -X POST http://127.0.0.1:${PORT}/api/views/ -H 'X-Api-Key: demo' \\
                -H 'Content-Type: application/json' -d '{"promoter": 1, "campaign": 1, "views": 1}'
              (60 a minute per IP and per key, then 429)
  Admin:      http://127.0.0.1:${PORT}/admin/   user: demo   password: demo
  ${CACHE_LINE}
  (local use only: DEBUG is on and the password is public; never expose this server)

EOF

exec "$PYTHON" manage.py runserver "127.0.0.1:${PORT}" "$@"
