#!/bin/bash
# Entry point of the nginx image (Dockerfile, target nginx); runs as root, then becomes nginx via exec.
# Installed by: the Dockerfile to /usr/local/bin/herald-nginx-entrypoint.
#
# Staging speaks TLS like production. Mount a real pair at /etc/ssl/herald/{fullchain,privkey}.pem, or
# let this script make a self-signed one on first start; it lives in the `tls` volume, so it survives
# container restarts and the browser exception only has to be accepted once.
set -o errexit -o pipefail -o nounset

cert=/etc/ssl/herald/fullchain.pem
key=/etc/ssl/herald/privkey.pem
if [ ! -s "$cert" ] || [ ! -s "$key" ]; then
  echo "herald-nginx: no certificate at $cert; making a self-signed one for ${HERALD_TLS_NAME:-localhost}"
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=${HERALD_TLS_NAME:-localhost}" \
    -addext "subjectAltName=DNS:${HERALD_TLS_NAME:-localhost},DNS:localhost,IP:127.0.0.1" \
    -keyout "$key" -out "$cert" 2>/dev/null
fi
nginx -t -q
exec "$@"
