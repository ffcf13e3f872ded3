#!/usr/bin/env bash
# `make reload` (and systemd's ExecReload): apply new code and config without failing a request.
#   1. local run: re-render the configs from deploy/ and reload nginx after `nginx -t`
#   2. supervisorctl update: programs whose section changed are restarted with it
#   3. uWSGI chain reload: workers replaced one at a time, each after its successor loaded the app
#   4. daphne processes restarted one at a time, each only after the previous one answers again; nginx
#      sends new sockets to the others meanwhile; sockets on the restarted process close and browsers
#      resume by seq (daphne cannot hand sockets over, daphne#177)
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
run_dir=$(dirname "$(ini_value "$SUPERVISOR_CONF" file)")
log_dir=$(ini_value "$SUPERVISOR_CONF" childlogdir)
for ((n = 0; n < numprocs; n++)); do
  log="$log_dir/daphne-$n.log"
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  # `restart` returns after startsecs; daphne may still be importing Django, so wait until it
  # answers before taking the next one down.
  ctl restart "daphne:daphne-$n" >&2
  if grep -q '^\[program:daphne\]' "$SUPERVISOR_CONF"; then
    "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-daphne --socket "$run_dir/daphne-$n.sock" >&2
  elif [ -f "$log" ]; then
    "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-daphne --log "$log" --offset "$offset" >&2
  fi
done

celery=()
grep -q '^\[program:beat\]' "$SUPERVISOR_CONF" && celery+=(beat)
[ "${HERALD_RELOAD_WORKER:-1}" != 0 ] && celery+=(worker)
# Together: both stop (the worker warm-shuts down), then both start.
[ ${#celery[@]} -gt 0 ] && ctl restart "${celery[@]}" >&2
say "reload done"
