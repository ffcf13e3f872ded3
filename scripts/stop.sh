#!/usr/bin/env bash
# `make stop`: stop the local run (supervisord and its programs, nginx, redis-server). Safe when
# nothing runs. Celery's warm shutdown lets a running deploy finish first (up to stopwaitsecs).
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
[ "$MODE" = local ] || die "stop.sh is for the local run; on a host use: systemctl stop herald"

# Waits for a pid file's process to exit after SIGTERM.
stop_pid() {
  local name=$1 pidfile=$2 wait=$3
  if pid_alive "$pidfile"; then
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 $((wait * 10))); do kill -0 "$pid" 2>/dev/null || { say "stopped $name"; return 0; }; sleep 0.1; done
    die "$name (pid $pid) still runs after ${wait}s"
  fi
  say "$name: not running"
}

[ -f "$SUPERVISOR_CONF" ] || { say "nothing to stop: $SUPERVISOR_CONF does not exist"; exit 0; }
# supervisord stops its programs in reverse priority order, each within its stopwaitsecs.
stop_pid supervisord "$(ini_value "$SUPERVISOR_CONF" pidfile)" 700
stop_pid nginx "$SOCK/nginx.pid" 30
stop_pid redis-server "$SOCK/redis.pid" 30
