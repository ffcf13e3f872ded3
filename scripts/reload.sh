#!/usr/bin/env bash
# `make reload` (and systemd's ExecReload): apply new code and config without failing a request.
#   1. local run: re-render the configs from deploy/ and reload nginx after `nginx -t`
#   2. supervisorctl update: programs whose section changed are restarted with it
#   3. uWSGI chain reload: workers replaced one at a time, each after its successor loaded the app
#   4. daphne processes restarted one at a time: drained first (its socket file renamed, so nginx sends
#      new handshakes to the others), restarted, and probed until it answers before the next one;
#      WebSockets open on it close and browsers resume by seq (daphne cannot hand them over, daphne#177)
#   5. Celery beat, then the worker (warm shutdown: a running deploy may finish first, up to stopwaitsecs)
# Set HERALD_RELOAD_WORKER=0 to leave the Celery worker running (e.g. while a long deploy runs),
# HERALD_RELOAD_UWSGI=0 to skip the uWSGI chain reload (config-only changes elsewhere).
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

updated=$(ctl update)
[ -z "$updated" ] || say "$updated"

if [ "${HERALD_RELOAD_UWSGI:-1}" != 0 ]; then
  ini="$ETC/uwsgi/herald.ini"
  "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" chain-reload \
    "$(ini_value "$ini" master-fifo)" "$(ini_value "$ini" stats)" >&2
fi

numprocs=$(sed -n '/^\[\(fcgi-\)\?program:daphne\]/,/^\[/s/^numprocs=//p' "$SUPERVISOR_CONF")
run_dir=$(dirname "$(ini_value "$SUPERVISOR_CONF" file)")
log_dir=$(ini_value "$SUPERVISOR_CONF" childlogdir)
for ((n = 0; n < numprocs; n++)); do
  log="$log_dir/daphne-$n.log"
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  # `restart` returns after startsecs; daphne may still be importing Django, so wait until it
  # answers before taking the next one down.
  # A group `update` just replaced (numprocs or command changed) is already new: only wait for it.
  if grep -q '^\[program:daphne\]' "$SUPERVISOR_CONF"; then
    sock="$run_dir/daphne-$n.sock"
    if [[ "$updated" != *"daphne: "* ]]; then
      # Drain: with its socket file renamed, nginx sends new handshakes to the other processes, and
      # handshakes already under way get a moment to finish before this one stops.
      [ -S "$sock" ] && mv "$sock" "$sock.draining"
      sleep "${HERALD_DAPHNE_DRAIN_SECONDS:-3}"
      ctl restart "daphne:daphne-$n" >&2
      rm -f "$sock.draining"
    fi
    "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-daphne --socket "$sock" >&2
  elif [ -f "$log" ]; then
    [[ "$updated" == *"daphne: "* ]] || ctl restart "daphne:daphne-$n" >&2
    "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-daphne --log "$log" --offset "$offset" >&2
  fi
done

celery=()
grep -q '^\[program:beat\]' "$SUPERVISOR_CONF" && celery+=(beat)
[ "${HERALD_RELOAD_WORKER:-1}" != 0 ] && celery+=(worker)
grep -q '^\[program:worker-io\]' "$SUPERVISOR_CONF" && celery+=(worker-io)
# Together: both stop (the worker warm-shuts down), then both start.
[ ${#celery[@]} -gt 0 ] && ctl restart "${celery[@]}" >&2
say "reload done"
