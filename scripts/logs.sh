#!/usr/bin/env bash
# `make logs [PROGRAM=worker]`: follow Herald's logs (all of them, or one program's).
# Files: nginx-access.log (JSON per request), nginx-error.log, uwsgi.log, daphne-N.log, worker.log,
# beat.log, fatal-watch.log (crash-loop alerts), supervisord.log, redis.log (local run only).
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
dir=${LOG:-$(ini_value "$SUPERVISOR_CONF" childlogdir)}
lines=${LINES_BACK:-20}
if [ -n "${1:-}" ]; then
  exec tail -n "$lines" -F "$dir/$1"*.log
fi
exec tail -n "$lines" -F "$dir"/*.log
