#!/usr/bin/env bash
# Builds the staging images (app, nginx, redis, postgres) with docker-compose.prod.yml's build sections
# (internal: called by `make image` and tests/docker). Layers are cached by the engine, dependencies
# (uv.lock) before code, so a rebuild after a code change takes seconds.
#
# HERALD_BUILD_CA: a CA bundle the build's pip/uv trust, for a TLS-inspecting proxy in front of PyPI;
#   copied into the build context (deploy/docker/build-ca/, gitignored), read by the builder stage only.
#   Empty: the build trusts Debian's bundle alone.
# HERALD_BASE_IMAGE, HERALD_IMAGE_PREFIX, HERALD_IMAGE_TAG: as in .env.staging.example.
# Usage: docker-build-images.sh [compose build options...]
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."

ca_dest=deploy/docker/build-ca/build-ca.crt
if [ -n "${HERALD_BUILD_CA:-}" ]; then
  # Atomic, so a build running at the same time never sees half a bundle.
  cp "$HERALD_BUILD_CA" "$ca_dest.$$" && mv -f "$ca_dest.$$" "$ca_dest"
else
  rm -f "$ca_dest"
fi
# The example file only satisfies the ${...:?} checks; building needs no secret. Values exported in the
# environment (HERALD_BASE_IMAGE, HERALD_IMAGE_TAG...) win over the file's.
exec "${COMPOSE:-docker-compose}" --env-file .env.staging.example -f docker-compose.prod.yml build "$@"
