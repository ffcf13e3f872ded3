#!/bin/bash
# Installed by deploy/docker/postgres.Dockerfile; read by docker as ENTRYPOINT and HEALTHCHECK.
# Entry point and health check of the postgres image (deploy/docker/postgres.Dockerfile); runs as postgres.
#   herald-postgres-entrypoint postgres   first start: initdb + role + database; then exec postgres
#   herald-postgres-entrypoint --health   pg_isready over TCP as the app's role (HEALTHCHECK)
# Env: POSTGRES_PASSWORD (required), POSTGRES_USER and POSTGRES_DB (default herald).
set -o errexit -o pipefail -o nounset
user=${POSTGRES_USER:-herald}
db=${POSTGRES_DB:-herald}

if [ "${1:-}" = "--health" ]; then
  # TCP, not the unix socket: the first-start server below listens on the socket only, so "healthy"
  # means the real server is up with the role and database made.
  exec pg_isready --quiet -h 127.0.0.1 -U "$user" -d "$db"
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set: put it in .env.staging (see .env.staging.example)}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "herald-postgres: initialising $PGDATA"
  initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  # Clients come from the other containers of this stack's network, always with a password.
  echo "host all all samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait --silent start
  psql --quiet --no-psqlrc --set ON_ERROR_STOP=1 --username=postgres --dbname=postgres \
    --set user="$user" --set db="$db" --set password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
fi
if [ "${1:-}" = "postgres" ]; then
  shift
  # Logs to stderr for `docker logs`.
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c logging_collector=off "$@"
fi
exec "$@"
