#!/usr/bin/env bash
# Makes sure a Docker engine answers (internal: called by Makefile targets that build images or start
# test hosts). Installs docker.io when missing and, on machines without systemd (CI, containers),
# starts dockerd in the background itself. Safe to call again: an engine that answers is left alone.
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")

"$here/ensure-packages.sh" docker.io
docker info >/dev/null 2>&1 && exit 0

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl start docker
else
  mkdir -p /var/log/herald-ci
  # Legacy builder only here (no buildx); iptables stays on so published ports work.
  nohup dockerd >/var/log/herald-ci/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/herald-ci/dockerd.log" >&2
exit 1
