#!/bin/sh
# Installs the Debian packages named as arguments when the base image lacks them, then drops apt's lists.
# Copied by: the Dockerfiles (Dockerfile, deploy/docker/*.Dockerfile) to /usr/local/sbin/herald-apt-install.
# Read by: `RUN herald-apt-install <packages>` at image build time; never shipped in a running service.
#
# Why a script: herald/debian-base (make base-image) already carries python3 and friends from debootstrap,
# so on that base most stages need no network at all; FROM debian:bookworm-slim the same line installs
# them from the mirror. Versions are not pinned: they come from the bookworm mirror (stable + security),
# exactly as Ansible installs them on production hosts, which is the point of staging.
set -o errexit -o nounset

missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "herald-apt-install:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
