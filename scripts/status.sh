#!/usr/bin/env bash
# `make status`: is every part of Herald up? Exits non-zero if anything is not.
# Works for the local run and, with HERALD_ETC_DIR=/etc/herald, on a host (run as the app user).
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
load_env
failed=0

echo "== supervisord programs"
# supervisorctl status exits 3 when any program is not RUNNING.
ctl status || failed=1

echo "== uWSGI workers"
stats=$(ini_value "$ETC/uwsgi/herald.ini" stats)
"$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" uwsgi-stats "$stats" || failed=1

echo "== Redis (REDIS_URL from herald.env)"
if "$VENV/bin/python" -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5).ping()' 2>/dev/null; then
  echo "redis: answers PING"
else
  echo "redis: DOWN (no answer at REDIS_URL)"; failed=1
fi

if [ "$MODE" = local ]; then
  echo "== nginx"
  pid_alive "$SOCK/nginx.pid" && echo "nginx: running (pid $(cat "$SOCK/nginx.pid"))" || { echo "nginx: DOWN"; failed=1; }
  port=$(sed -n 's/^herald_http_port: //p' "$LOCAL_VARS")
  echo "== /healthz through nginx"
  "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-http "http://127.0.0.1:$port/healthz" \
    --timeout 5 || failed=1
fi
exit $failed
