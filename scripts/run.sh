#!/usr/bin/env bash
# `make run`: Herald on this machine the production way (nginx → uWSGI + daphne ×2, Celery worker and
# beat under supervisord, its own redis-server), all as the current user on loopback, state in ./run
# and ./var. Safe to run again: what runs is kept, configs are re-rendered and reloaded when changed.
# Prerequisites (the Makefile does them first): Debian packages redis-server + nginx, and `make venv`.
# Environment: HERALD_HTTP_PORT (default 8080, remembered), HERALD_RUN_ROOT (default ./run),
#   HERALD_NO_DEMO=1 to skip starting a demo deploy.
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
[ "$MODE" = local ] || die "run.sh is for the local run; on a host systemd starts Herald (systemctl start herald)"

mkdir -p "$ETC" "$SOCK" "$LOG"
http_port=$("$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" local-vars "$LOCAL_VARS" \
  --run-root "$RUN_ROOT" ${HERALD_HTTP_PORT:+--http-port "$HERALD_HTTP_PORT"})
render_local --quiet
load_env
mkdir -p "$HERALD_VAR_DIR" "$HERALD_STATIC_ROOT"

say "==> database: migrate, static files, admin user, demo service"
manage migrate --noinput -v 0
manage collectstatic --noinput -v 0
manage ensure_admin --username admin --password-file "$RUN_ROOT/admin-password" >&2
manage seed_demo >&2

say "==> redis-server (private, password in $ETC/redis/redis.conf)"
if pid_alive "$SOCK/redis.pid"; then
  say "    already running (pid $(cat "$SOCK/redis.pid"))"
else
  /usr/bin/redis-server "$ETC/redis/redis.conf"
fi

say "==> supervisord: uWSGI, daphne, Celery worker and beat"
if supervisord_running; then
  # Picks up program sections that changed since the last run; unchanged programs keep running.
  ctl update >&2
  ctl start all >/dev/null || true
else
  "$VENV/bin/supervisord" -c "$SUPERVISOR_CONF"
fi

say "==> nginx on 127.0.0.1:$http_port"
nginx_args=(-c "$ETC/nginx/nginx.conf" -e "$LOG/nginx-error.log")
nginx -t -q "${nginx_args[@]}"
if pid_alive "$SOCK/nginx.pid"; then
  nginx "${nginx_args[@]}" -s reload
else
  nginx "${nginx_args[@]}"
fi

say "==> waiting for /healthz through nginx"
if ! "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-http \
    "http://127.0.0.1:$http_port/healthz" --timeout 90 >/dev/null; then
  ctl status >&2 || true
  die "Herald did not become healthy; see \`make logs\` and $LOG/"
fi

# /healthz went through uWSGI; each daphne answers on its own socket once it has imported Django.
if grep -q '^\[program:daphne\]' "$SUPERVISOR_CONF"; then
  numprocs=$(sed -n '/^\[program:daphne\]/,/^\[/s/^numprocs=//p' "$SUPERVISOR_CONF")
  for ((n = 0; n < numprocs; n++)); do
    "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" wait-daphne --socket "$SOCK/daphne-$n.sock" \
      --timeout 90 >/dev/null || die "daphne-$n does not answer; see $LOG/daphne-$n.log"
  done
fi

demo=""
if [ -z "${HERALD_NO_DEMO:-}" ]; then
  # A second `make run` while the first demo deploy still runs hits the per-service lock: fine.
  demo=$(manage start_demo_deploy 2>"$LOG/demo-deploy.err" | tail -n 1) ||
    { say "    no new demo deploy: $(tail -n 1 "$LOG/demo-deploy.err")"; demo=""; }
fi

cat <<INFO

Herald is running.
  Open:      http://127.0.0.1:$http_port${demo:-/}
  Log in:    admin / $(cat "$RUN_ROOT/admin-password" 2>/dev/null || echo "(see the first make run's output)")
  Status:    make status      Logs: make logs      Stop: make stop      Graceful reload: make reload
INFO
