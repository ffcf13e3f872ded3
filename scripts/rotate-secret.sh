#!/usr/bin/env bash
# `make rotate-secret SECRET=secret-key|redis-password`: replace one of the local run's generated
# secrets while Herald keeps serving (no failed request, nobody logged out, no deploy interrupted).
#   secret-key      new DJANGO_SECRET_KEY, first accepted by every program, then signing; the old one
#                   stays in DJANGO_SECRET_KEY_FALLBACKS, so sessions it signed stay valid until the
#                   next rotation retires it
#   redis-password  Redis accepts the old and the new password, every program is reloaded onto the
#                   new one, then the old one is refused
# Both end in scripts/reload.sh, which re-renders herald.env; each program re-reads it as it restarts.
# Hosts rotate through the vault and the Ansible play instead (docs/runbook.md).
set -o errexit -o pipefail -o nounset
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
[ "$MODE" = local ] || die "rotate-secret.sh is for the local run; on hosts change the vault and run the play"

ctl_py() { "$VENV/bin/python" "$HERALD_SRC/scripts/lib/herald_ctl.py" "$@"; }
var() { ctl_py local-var "$LOCAL_VARS" "$1"; }
# The new value reaches the programs: a graceful reload (each re-reads herald.env), or only the
# re-rendered files when Herald is not running (the next start reads them).
apply() { if supervisord_running; then "$HERALD_SRC/scripts/reload.sh"; else render_local --quiet; fi; }

# One ACL command to the running redis-server, authenticated with $1. The passwords travel in the
# environment and on stdin, never in argv (which `ps` shows to every user).
redis_acl() {
  local password=$1 command=$2 reply
  reply=$(REDISCLI_AUTH=$password redis-cli --no-auth-warning -p "$(var herald_redis_port)" <<<"$command")
  [ "$reply" = OK ] || die "redis-server refused the rotation: $reply"
}

case "${1:-}" in
  secret-key)
    ctl_py rotate "$LOCAL_VARS" secret-key           # every process learns the new key as a fallback,
    apply
    ctl_py rotate "$LOCAL_VARS" secret-key --finish  # then it signs (herald_ctl.py rotate says why)
    apply
    say "secret key rotated; the previous key verifies existing sessions until the next rotation"
    ;;
  redis-password)
    ctl_py rotate "$LOCAL_VARS" redis-password  # resumes an unfinished rotation instead
    old=$(var herald_redis_password_previous)
    new=$(var herald_redis_password)
    if pid_alive "$SOCK/redis.pid"; then
      redis_acl "$old" "ACL SETUSER default >$new"  # both accepted from here on
      apply
      redis_acl "$new" "ACL SETUSER default <$old"  # every program uses the new one now
    else
      render_local --quiet  # redis.conf carries the new password to the next start
    fi
    ctl_py rotate "$LOCAL_VARS" redis-password --finish
    say "Redis password rotated; the previous one is refused"
    ;;
  *) die "usage: $0 secret-key|redis-password" ;;
esac
