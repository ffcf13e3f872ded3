#!/usr/bin/env bash
# Waits until a container's health check says healthy (internal: `make staging-up`). Fails, printing the
# last health check outputs, when it turns unhealthy, stops, or TIMEOUT seconds (default 300) pass.
# Usage: docker-wait-healthy.sh CONTAINER
set -o errexit -o pipefail -o nounset
container=${1:?usage: docker-wait-healthy.sh CONTAINER}
deadline=$((SECONDS + ${TIMEOUT:-300}))
while [ $SECONDS -lt $deadline ]; do
  state=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container")
  case "$state" in
    "running healthy") echo "$container is healthy"; exit 0 ;;
    "running unhealthy"|exited*|dead*) break ;;
  esac
  sleep 2
done
echo "$container is not healthy ($state); last checks:" >&2
docker inspect --format '{{range .State.Health.Log}}{{.Output}}{{end}}' "$container" >&2 || true
exit 1
