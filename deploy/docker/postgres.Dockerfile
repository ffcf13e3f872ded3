# Read by: docker build (docker-compose.prod.yml and `make image` run it).
# PostgreSQL for Herald's staging stack (docker-compose.prod.yml, service postgres): Debian's
# postgresql (15), the package production hosts get. Data lives in the postgres-data volume.
# Build: docker build -f deploy/docker/postgres.Dockerfile deploy/docker   (compose does it; make image too)
ARG BASE_IMAGE=herald/debian-base:bookworm
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c"]
COPY apt-install.sh /usr/local/sbin/herald-apt-install
# No "main" cluster at install time: the entry point makes one in the volume on first start.
RUN install -d /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/herald.conf \
 && herald-apt-install postgresql \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/herald-postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data \
    PATH=/usr/lib/postgresql/15/bin:$PATH
# Re-declared: an ARG before the first FROM is visible to FROM lines only.
ARG BASE_IMAGE
ARG HERALD_VERSION=0.1.0
LABEL org.opencontainers.image.title="herald-postgres" \
      org.opencontainers.image.description="Debian's PostgreSQL 15 for Herald (staging)" \
      org.opencontainers.image.version="${HERALD_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# The package's own account, whose uid Debian allocates at install time (so no fixed number to name).
# hadolint ignore=DL3066
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
# INT is PostgreSQL's "fast" shutdown: roll back open transactions and stop cleanly; TERM ("smart")
# would wait for every client (the app's pooled connections) to leave first.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=5s --retries=5 --start-period=30s \
  CMD ["/usr/local/bin/herald-postgres-entrypoint", "--health"]
ENTRYPOINT ["/usr/local/bin/herald-postgres-entrypoint"]
CMD ["postgres"]
