#!/usr/bin/env bash
# Builds what a fleet deploy ships, on the controller (internal: called by `make deploy` and the fleet
# tests). App hosts never reach PyPI: they install from the wheelhouse built here.
#
#   fleet-build-release.sh VERSION [APP_SRC]    the wheelhouse (if needed) and the release archive
#   fleet-build-release.sh prepare              the wheelhouse only
#
# Writes under var/fleet/ (git-ignored):
#   wheels-<lockhash>.tar    every runtime dependency pinned by uv.lock, as wheels (uWSGI is compiled
#                            here, on Debian bookworm like the hosts); reused while uv.lock is unchanged.
#                            wheels/requirements.txt inside lists the pins (no hashes: uWSGI's wheel is
#                            built here, so only its sdist hash is in the lock; pip checked the hashes
#                            when it built the wheelhouse).
#   herald-<VERSION>.tar.gz  app/ (or APP_SRC), deploy/ and scripts/ of this checkout, plus .release/
#                            (VERSION, requirements.txt, WHEELHOUSE): everything a host runs from
#                            releases/<VERSION>/ (supervisord's fatal-watch and ExecReload live in deploy/
#                            and scripts/)
# and prints HERALD_WHEELHOUSE=… and HERALD_RELEASE_ARCHIVE=… for `eval`.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
version=${1:?usage: fleet-build-release.sh VERSION|prepare [APP_SRC]}
src=${2:-app}
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]] || { echo "VERSION '$version' must match [A-Za-z0-9][A-Za-z0-9._+-]*" >&2; exit 2; }
[ -f "$src/manage.py" ] || { echo "APP_SRC '$src' has no manage.py" >&2; exit 2; }
UV=${UV:-.tools/bin/uv}
PYTHON=${PYTHON:-python3.11}
# The app hosts' interpreter (Debian 12's python3); markers in uv.lock are evaluated for it.
HOST_PYTHON=${HOST_PYTHON:-3.11.2}
out=var/fleet
mkdir -p "$out"
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

# Named after what the hosts install (the runtime pins and the hosts' Python), so a change to the
# dev or bench groups does not rebuild it.
lockhash=$( ("$UV" export --locked --no-dev --no-emit-project --format requirements-txt --quiet; echo "$HOST_PYTHON") \
  | grep -v '^#' | sha256sum | cut -c1-12)
wheels_tar="$out/wheels-$lockhash.tar"
if [ ! -s "$wheels_tar" ]; then
  work=$(mktemp -d "$out/wheels.XXXXXX")
  cleanup+=("$work")
  # Runtime group only; with hashes, pip refuses anything that is not exactly what uv.lock pins.
  "$UV" export --locked --no-dev --no-emit-project --format requirements-txt --quiet -o "$work/uv-export.txt"
  # Environment markers are decided for the hosts' Python (Debian bookworm's CPython), not the
  # controller's: e.g. async-timeout is needed below 3.11.3, and bookworm has 3.11.2.
  "$PYTHON" - "$work" "$HOST_PYTHON" <<'PY'
import re, sys
from pathlib import Path
from pip._vendor.packaging.markers import Marker

work, version = Path(sys.argv[1]), sys.argv[2]
target = {"python_full_version": version, "python_version": ".".join(version.split(".")[:2]),
          "implementation_name": "cpython", "platform_python_implementation": "CPython",
          "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"}
text = work.joinpath("uv-export.txt").read_text()
hashed, plain = [], []
for entry in re.split(r"\n(?=\S)", text):
    if not entry.strip() or entry.startswith("#"):
        continue
    head, _, rest = entry.partition("\\")
    requirement, _, marker = head.partition(";")
    if marker.strip() and not Marker(marker.strip()).evaluate(target):
        continue
    hashed.append(requirement.strip() + " \\" + rest if rest else requirement.strip())
    plain.append(requirement.strip())
work.joinpath("hashed.txt").write_text("\n".join(hashed) + "\n")
work.joinpath("requirements.txt").write_text("\n".join(plain) + "\n")
PY
  echo "building the wheelhouse for uv.lock $lockhash (uWSGI compiles: about a minute)" >&2
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$work/hashed.txt" -w "$work/wheels" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  cp "$work/requirements.txt" "$work/wheels/requirements.txt"
  tar -C "$work" -cf "$wheels_tar.tmp" wheels
  mv "$wheels_tar.tmp" "$wheels_tar"
fi
echo "HERALD_WHEELHOUSE=$PWD/$wheels_tar"
[ "$version" = prepare ] && exit 0

archive="$out/herald-$version.tar.gz"
stage=$(mktemp -d "$out/release.XXXXXX")
cleanup+=("$stage")
top="$stage/herald-$version"
mkdir -p "$top/app" "$top/.release"
excludes=(--exclude=__pycache__ --exclude='*.pyc' --exclude='*.sqlite3' --exclude=node_modules)
tar -C "$src" "${excludes[@]}" -cf - . | tar -C "$top/app" -xf -
tar "${excludes[@]}" -cf - deploy scripts | tar -C "$top" -xf -
tar -xOf "$wheels_tar" wheels/requirements.txt >"$top/.release/requirements.txt"
echo "$version" >"$top/.release/VERSION"
echo "$lockhash" >"$top/.release/WHEELHOUSE"
# Reproducible: the same tree gives the same bytes.
tar -C "$stage" --sort=name --mtime='2000-01-01 00:00Z' --owner=0 --group=0 --numeric-owner \
  -cf - "herald-$version" | gzip -n >"$archive.tmp"
mv "$archive.tmp" "$archive"
echo "HERALD_RELEASE_ARCHIVE=$PWD/$archive"
