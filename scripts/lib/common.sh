# Shared by the operator scripts in scripts/ (internal: sourced, never run).
# Two modes, chosen by what exists:
#   local run (make run, stack tests): everything under HERALD_RUN_ROOT (default ./run), rendered from
#     deploy/profiles/local.yml plus $HERALD_RUN_ROOT/local-vars.yml; nginx and redis are ours.
#   host (systemd ExecReload, an operator on a host): HERALD_ETC_DIR=/etc/herald, rendered by Ansible;
#     nginx and redis belong to the system, so these scripts leave them alone.

HERALD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${HERALD_VENV:-$HERALD_SRC/.venv}
if [ -n "${HERALD_ETC_DIR:-}" ] && [ -z "${HERALD_RUN_ROOT:-}" ]; then
  MODE=host
  ETC=$HERALD_ETC_DIR
else
  MODE=local
  RUN_ROOT=$(mkdir -p "${HERALD_RUN_ROOT:-$HERALD_SRC/run}" && cd "${HERALD_RUN_ROOT:-$HERALD_SRC/run}" && pwd)
  ETC=$RUN_ROOT/etc
  SOCK=$RUN_ROOT/sock
  LOG=$RUN_ROOT/log
  LOCAL_VARS=$RUN_ROOT/local-vars.yml
fi
SUPERVISOR_CONF=$ETC/supervisor/supervisord.conf

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The environment every Herald program gets (secrets included); manage.py needs it too.
load_env() {
  [ -r "$ETC/herald.env" ] || die "$ETC/herald.env is missing; run \`make run\` (local) or the Ansible play (host)"
  set -a
  # shellcheck disable=SC1091
  . "$ETC/herald.env"
  set +a
}

manage() { (cd "$HERALD_SRC/app" && "$VENV/bin/python" manage.py "$@"); }
ctl() { "$VENV/bin/supervisorctl" -c "$SUPERVISOR_CONF" "$@"; }

# A value from an ini-style file: `ini_value FILE key` (first match; uWSGI and supervisor files).
ini_value() { sed -n "s/^$2 *= *//p" "$1" | head -n 1; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

supervisord_running() { pid_alive "$(ini_value "$SUPERVISOR_CONF" pidfile)"; }

# Re-render the local configs from the templates; prints changed:/ok: per file.
render_local() {
  "$VENV/bin/python" "$HERALD_SRC/deploy/render.py" --profile local --out "$ETC" --vars "$LOCAL_VARS" "$@"
}
