#!/usr/bin/env bash
# supervisorctl for Herald's supervisord, with the right config: one component at a time.
#   scripts/ctl.sh status                 every program and its state (RUNNING, FATAL, …)
#   scripts/ctl.sh restart worker         one program; daphne processes are daphne:daphne-0, …
#   scripts/ctl.sh stop beat / start beat
#   scripts/ctl.sh tail -f worker stderr  one program's log
# Local run by default (./run, or HERALD_RUN_ROOT); on a host: HERALD_ETC_DIR=/etc/herald, as the app user.
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
exec "$VENV/bin/supervisorctl" -c "$SUPERVISOR_CONF" "$@"
