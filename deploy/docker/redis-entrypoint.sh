#!/bin/bash
# Installed by deploy/docker/redis.Dockerfile; read by docker as ENTRYPOINT and HEALTHCHECK.
# Entry point and health check of the redis image (deploy/docker/redis.Dockerfile); runs as redis.
#   herald-redis-entrypoint redis-server /etc/redis/herald.conf   write the password file, then exec
#   herald-redis-entrypoint --health                               PING with the password (HEALTHCHECK)
set -o errexit -o pipefail -o nounset
: "${REDIS_PASSWORD:?REDIS_PASSWORD is not set: put it in .env.staging (see .env.staging.example)}"

if [ "${1:-}" = "--health" ]; then
  # REDISCLI_AUTH keeps the password off redis-cli's command line.
  [ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 ping)" = "PONG" ]
  exit
fi

umask 077
# The default user's password (REDIS_URL=redis://:<password>@redis:6379/0, as herald.env has on hosts).
printf 'requirepass "%s"\n' "${REDIS_PASSWORD//\"/\\\"}" > /run/redis/auth.conf
exec "$@"
