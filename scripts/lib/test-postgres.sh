#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite (internal: called by `make test`).
#   test-postgres.sh start DIR   → initdb + start on a free loopback port; prints the DATABASE_URL
#   test-postgres.sh stop DIR    → stop it and remove DIR
# PostgreSQL refuses to run as root, so as root the cluster runs as Debian's `postgres` user.
set -o errexit -o pipefail -o nounset

action=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner=()
[ "$(id -u)" -eq 0 ] && as_owner=(runuser -u postgres --)

case "$action" in
start)
  rm -rf "$dir" && mkdir -p "$dir"
  if [ ${#as_owner[@]} -gt 0 ]; then
    chmod o+x "$(dirname "$dir")"  # a mktemp parent is 0700; postgres must reach its own directory
    chown postgres: "$dir"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U herald --auth=trust -E UTF8 >"$dir/initdb.log"
  # fsync off: a test cluster is thrown away, and durability costs seconds per test run.
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    >/dev/null
  "${as_owner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U herald herald
  echo "postgres://herald@127.0.0.1:$port/herald"
  ;;
stop)
  [ -d "$dir/data" ] && "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 64
  ;;
esac
