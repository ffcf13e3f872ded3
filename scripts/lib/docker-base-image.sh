#!/usr/bin/env bash
# Builds the Debian bookworm base image the Dockerfile starts FROM (internal: called by `make base-image`,
# which operators on air-gapped sites run too). No registry is needed: debootstrap from a Debian mirror →
# `docker import`. The result stands in for `debian:bookworm-slim` (same release, same minbase package set)
# plus the Python runtime every Herald image shares, so staging runs the same Debian bits as production.
#
# Cached: when the tag exists with the same revision label, nothing is rebuilt. Bump BASE_IMAGE_REV when
# the package list changes.
# Usage: docker-base-image.sh [TAG]   (default herald/debian-base:bookworm)
# Env:   HERALD_DEBIAN_MIRROR (default http://deb.debian.org/debian), HERALD_DEBIAN_SECURITY_MIRROR
#        (default <mirror>-security), HERALD_BASE_REBUILD=1 to force (e.g. monthly, for security updates).
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")
tag=${1:-herald/debian-base:bookworm}
BASE_IMAGE_REV=2
mirror=${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Security updates, as production hosts get them (deb.debian.org serves them under /debian-security).
security_mirror=${HERALD_DEBIAN_SECURITY_MIRROR:-${mirror}-security}

# python3 + libpython3.11: the interpreter the virtualenv and uWSGI (linked to libpython) run on;
# python3-venv: the builder stage creates the virtualenv with it; ca-certificates: TLS to PyPI/mirrors.
# Service packages (nginx, redis-server, postgresql, the compiler) are installed by each Dockerfile stage,
# so the same Dockerfile works FROM debian:bookworm-slim, and the app image carries no database server.
base_packages=python3,python3-venv,libpython3.11,ca-certificates

rev=$(docker image inspect --format '{{ index .Config.Labels "herald.debian-base-rev" }}' "$tag" 2>/dev/null || true)
if [ "$rev" = "$BASE_IMAGE_REV" ] && [ "${HERALD_BASE_REBUILD:-0}" != 1 ]; then
  echo "$tag is up to date (rev $BASE_IMAGE_REV)"
  exit 0
fi

"$here/ensure-packages.sh" debootstrap

rootfs=$(mktemp -d /var/tmp/herald-docker-base.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -30 "$rootfs.log" >&2; exit 1; }

# The same trims debian:bookworm-slim ships: no apt caches, docs or man pages in image layers, now and
# in every later `apt-get install`.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
// Keep downloaded .debs out of image layers (as the official Debian images do).
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
  >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-excludes"

# The mirrors debootstrap used are the ones later `apt-get install` steps use; security updates included.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
  "$mirror" "$mirror" "$security_mirror" >"$rootfs/etc/apt/sources.list"
# Bring the base up to date with bookworm-security, as a production host's unattended upgrades would.
chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq' \
  >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log" >&2; exit 1; }
# What debootstrap itself left: package lists and caches, docs (copyright files stay, as in -slim).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
find "$rootfs"/usr/share/doc -type f ! -name copyright -delete

tar -C "$rootfs" -c . | docker import \
  --change "LABEL herald.debian-base-rev=$BASE_IMAGE_REV" \
  --change 'LABEL org.opencontainers.image.title="Herald Debian base" org.opencontainers.image.base.name="debian:bookworm (debootstrap minbase)"' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "built $tag (rev $BASE_IMAGE_REV): $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
