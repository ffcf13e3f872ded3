#!/usr/bin/env bash
# Builds the Debian bookworm "systemd host" image the Ansible fleet tests boot as hosts (internal: called
# by tests/ansible, not by hand). It is what a fresh VM from a Debian mirror looks like: systemd as PID 1,
# sshd, python3, sudo. No registry is needed: debootstrap → `docker import` → one `docker build` layer.
#
# The second layer preloads the Debian packages the roles install (redis-server, postgresql, nginx, ...)
# purely as a download cache, so three hosts do not fetch ~80 MB each on every test run; the roles still
# declare and install every package (`ansible.builtin.apt: state=present`), as on a fresh machine.
#
# Cached: when the tag exists with the same revision label, nothing is rebuilt. Bump HOST_IMAGE_REV when the
# package lists change. Usage: host-image.sh [TAG]   (default herald/systemd-host:bookworm)
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")
tag=${1:-herald/systemd-host:bookworm}
base_tag="${tag%:*}-base:${tag##*:}"
HOST_IMAGE_REV=5
mirror=${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What any freshly installed Debian server has, plus what Ansible needs (python3, sudo, acl for
# unprivileged become) and systemd itself.
base_packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,acl,openssh-server,iproute2,procps,ca-certificates,curl,less,locales,tzdata
# Download cache only: every one of these is installed again (state=present) by a role.
preload_packages="redis-server redis-tools postgresql postgresql-client python3-psycopg2 nginx
  python3-venv libpython3.11 libxml2 libjansson4 libpcre3 libyaml-0-2 chrony logrotate"

rev=$(docker image inspect --format '{{ index .Config.Labels "herald.image-rev" }}' "$tag" 2>/dev/null || true)
if [ "$rev" = "$HOST_IMAGE_REV" ]; then
  exit 0
fi

"$here/ensure-packages.sh" debootstrap

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  rootfs=$(mktemp -d /var/tmp/herald-host-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap bookworm into $rootfs (about a minute)"
  debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -30 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  # Units that make no sense in a container (no consoles, no udev, no kernel modules).
  for unit in getty@tty1.service serial-getty@ttyS0.service systemd-udevd.service systemd-modules-load.service \
      systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  rm -f "$rootfs"/etc/ssh/ssh_host_*   # regenerated per container below, never baked into the image
  tar -C "$rootfs" -c . | docker import \
    --change 'CMD ["/sbin/init"]' - "$base_tag" >/dev/null
fi

# policy-rc.d keeps package scripts from starting daemons during the build; systemd starts them at boot.
docker build --quiet --label "herald.image-rev=$HOST_IMAGE_REV" -t "$tag" - >/dev/null <<DOCKERFILE
FROM $base_tag
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(echo $preload_packages) >/dev/null \
 && rm -f /usr/sbin/policy-rc.d \
 && systemctl disable redis-server postgresql nginx chrony >/dev/null 2>&1 || true
# Fresh host keys on first boot of every container (sshd refuses to start without them).
RUN mkdir -p /etc/systemd/system/ssh.service.d \
 && printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' > /etc/systemd/system/ssh.service.d/host-keys.conf \
 && systemctl enable ssh >/dev/null 2>&1
CMD ["/sbin/init"]
STOPSIGNAL SIGRTMIN+3
DOCKERFILE
echo "built $tag (rev $HOST_IMAGE_REV)"
