# Read by: docker build (docker-compose.prod.yml and `make image` run it).
# Redis for Herald's staging stack (docker-compose.prod.yml, service redis): Debian's redis-server,
# the package production hosts get from the Ansible redis role. Channel layer and Celery broker.
# Build: docker build -f deploy/docker/redis.Dockerfile deploy/docker   (compose does it; make image too)
ARG BASE_IMAGE=herald/debian-base:bookworm
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c"]
COPY apt-install.sh /usr/local/sbin/herald-apt-install
# redis-server: the server; redis-tools (its dependency): redis-cli for the health check.
RUN herald-apt-install redis-server \
 && install -d -o redis -g redis -m 0750 /var/lib/redis /run/redis
COPY redis.conf /etc/redis/herald.conf
COPY redis-entrypoint.sh /usr/local/bin/herald-redis-entrypoint
# Re-declared: an ARG before the first FROM is visible to FROM lines only.
ARG BASE_IMAGE
ARG HERALD_VERSION=0.1.0
LABEL org.opencontainers.image.title="herald-redis" \
      org.opencontainers.image.description="Debian's redis-server configured for Herald (staging)" \
      org.opencontainers.image.version="${HERALD_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# The package's own account, whose uid Debian allocates at install time (so no fixed number to name).
# hadolint ignore=DL3066
USER redis
VOLUME ["/var/lib/redis"]
EXPOSE 6379
HEALTHCHECK --interval=5s --timeout=5s --retries=5 \
  CMD ["/usr/local/bin/herald-redis-entrypoint", "--health"]
ENTRYPOINT ["/usr/local/bin/herald-redis-entrypoint"]
CMD ["redis-server", "/etc/redis/herald.conf"]
