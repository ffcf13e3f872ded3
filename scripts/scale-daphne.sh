#!/usr/bin/env bash
# Run N daphne processes (local run): records N in run/local-vars.yml, re-renders nginx's upstream
# and supervisor's numprocs, then applies both (reload.sh without restarting Celery).
# supervisor replaces the whole daphne group when numprocs changes, so every open WebSocket drops
# once and browsers resume by seq; on hosts set herald_daphne_processes in group_vars instead.
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
[ "$MODE" = local ] || die "on a host, set herald_daphne_processes in Ansible's group_vars and run the play"
n=${1:?usage: scripts/scale-daphne.sh N}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, got '$n'"
"$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" local-vars "$LOCAL_VARS" --run-root "$RUN_ROOT" \
  --set "herald_daphne_processes=$n" >/dev/null
HERALD_RELOAD_WORKER=0 HERALD_RELOAD_UWSGI=0 "$HERALD_SRC/scripts/reload.sh"
