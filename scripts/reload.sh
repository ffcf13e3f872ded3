#!/usr/bin/env bash
# `make reload` (and systemd's ExecReload): apply new code and config without failing a request.
#   1. local run: re-render the configs from deploy/ and reload nginx after `nginx -t`
#   2. supervisorctl update: programs whose section changed are restarted with it
#   3. uWSGI chain reload: workers replaced one at a time, each after its successor loaded the app
#   4. daphne processes restarted one at a time: the shared listener keeps accepting; sockets on the
#      restarted process close and browsers resume by seq (daphne cannot hand sockets over)
#   5. Celery beat, then the worker (warm shutdown: a running deploy may finish first, up to stopwaitsecs)
# Set HERALD_RELOAD_WORKER=0 to leave the Celery worker running (e.g. while a long deploy runs).
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

if [ "$MODE" = local ]; then
  render_local --quiet
  nginx -t -q -c "$ETC/nginx/nginx.conf" -e "$LOG/nginx-error.log"
  nginx -c "$ETC/nginx/nginx.conf" -e "$LOG/nginx-error.log" -s reload
  say "nginx: reloaded (old workers finish their requests)"
fi
load_env
supervisord_running || die "supervisord is not running; start Herald first"

ctl update >&2

ini="$ETC/uwsgi/herald.ini"
"$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" chain-reload \
  "$(ini_value "$ini" master-fifo)" "$(ini_value "$ini" stats)" >&2

numprocs=$(sed -n '/^\[\(fcgi-\)\?program:daphne\]/,/^\[/s/^numprocs=//p' "$SUPERVISOR_CONF")
for ((n = 0; n < numprocs; n++)); do
  # `restart` returns once the new process has stayed up for startsecs.
  ctl restart "daphne:daphne-$n" >&2
done

if grep -q '^\[program:beat\]' "$SUPERVISOR_CONF"; then
  ctl restart beat >&2
fi
if [ "${HERALD_RELOAD_WORKER:-1}" != 0 ]; then
  ctl restart worker >&2
fi
say "reload done"
