# Herald's images for staging (docker-compose.prod.yml): the app (supervisord running uWSGI, daphne,
# the Celery worker and beat) and the nginx in front of it. Redis and PostgreSQL have their own small
# Dockerfiles under deploy/docker/. Every image starts FROM Debian bookworm with Debian's packages, so
# staging runs the same python3, nginx, redis-server and postgresql as a production host.
#
# Build:   make image        (docker build --target app / --target nginx; see the Makefile section)
# Base:    BASE_IMAGE defaults to herald/debian-base:bookworm, made by `make base-image` with debootstrap
#          (no registry needed: air-gapped sites with a Debian mirror use it as is). Where a registry is
#          reachable, `--build-arg BASE_IMAGE=debian:bookworm-slim` gives the same result.
# Proxy:   a TLS-inspecting proxy's CA goes in deploy/docker/build-ca/*.crt (make image copies
#          HERALD_BUILD_CA there); only the builder stage reads it.
# Config:  uWSGI, supervisor and nginx files are rendered from the same deploy/ templates as on a
#          production host (deploy/render.py --profile image | compose), at build time.
#
# Stage order matters with the legacy builder (no BuildKit here): it builds every stage above the
# target, so the default target `app` comes last and `nginx` needs only what precedes it.

ARG BASE_IMAGE=herald/debian-base:bookworm

# ----------------------------------------------------------------------------------------------
# builder: the virtualenv (uWSGI compiles here), rendered configs, collected static files.
FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c"]
COPY deploy/docker/apt-install.sh /usr/local/sbin/herald-apt-install
# gcc, libc6-dev, python3-dev: uWSGI has no wheel and compiles against Debian's libpython3.11.
# python3-venv: the virtualenv (and the one uv is installed into).
RUN herald-apt-install gcc libc6-dev python3-dev python3-venv

# The CA bundle pip and uv trust: Debian's, plus any extra *.crt for a TLS-inspecting proxy. It stays in
# this stage: the runtime stages copy only the virtualenv, the rendered configs and the static files.
COPY deploy/docker/build-ca/ /tmp/build-ca/
RUN find /tmp/build-ca -name '*.crt' -exec cat /etc/ssl/certs/ca-certificates.crt {} + > /tmp/build-ca.pem \
 && [ -s /tmp/build-ca.pem ] || cp /etc/ssl/certs/ca-certificates.crt /tmp/build-ca.pem
ENV PIP_CERT=/tmp/build-ca.pem \
    SSL_CERT_FILE=/tmp/build-ca.pem \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/srv/herald/.venv

# uv at the version the Makefile pins (UV_VERSION there), in a venv of its own outside the app's.
ARG UV_VERSION=0.13.8
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"

# Dependencies before code: this layer is rebuilt only when pyproject.toml or uv.lock change.
WORKDIR /srv/herald
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --locked --no-dev --no-install-project --python /usr/bin/python3.11 --quiet

COPY deploy/ deploy/
# App configs (profile image) and the nginx site (profile compose): the production templates, with the
# variables that put uWSGI/daphne on TCP and make nginx resolve the app container per request.
RUN .venv/bin/python deploy/render.py --profile image --out /tmp/rendered/app --quiet \
 && .venv/bin/python deploy/render.py --profile compose --out /tmp/rendered/nginx --quiet

COPY app/ app/
# Static files are collected here once; the app and nginx images both copy the result. The settings
# need a secret to import, never used for anything else.
RUN DJANGO_SETTINGS_MODULE=herald.settings.production DJANGO_SECRET_KEY=collectstatic-only \
    DJANGO_ALLOWED_HOSTS=localhost HERALD_STATIC_ROOT=/var/lib/herald/static \
    .venv/bin/python app/manage.py collectstatic --noinput --verbosity 0

# ----------------------------------------------------------------------------------------------
# nginx: Debian's nginx with Debian's nginx.conf, Herald's site and headers where a host has them.
FROM ${BASE_IMAGE} AS nginx
SHELL ["/bin/bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c"]
COPY deploy/docker/apt-install.sh /usr/local/sbin/herald-apt-install
# nginx: the production web server package; openssl: the self-signed staging certificate.
RUN herald-apt-install nginx openssl
# Debian's default site would answer on port 80 before Herald's redirect does. Logs go to the container's
# stdout/stderr (`docker logs`), the way the official nginx image does it.
RUN rm -f /etc/nginx/sites-enabled/default \
 && install -d /var/log/herald /etc/ssl/herald \
 && ln -sf /dev/stdout /var/log/herald/nginx-access.log \
 && ln -sf /dev/stderr /var/log/herald/nginx-error.log \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY --from=builder /tmp/rendered/nginx/nginx/herald-site.conf /etc/nginx/sites-enabled/herald-site.conf
COPY --from=builder /tmp/rendered/nginx/nginx/herald-headers.conf /etc/nginx/snippets/herald-headers.conf
COPY --from=builder /var/lib/herald/static/ /var/lib/herald/static/
COPY deploy/docker/nginx-entrypoint.sh /usr/local/bin/herald-nginx-entrypoint
COPY deploy/docker/healthcheck.py /usr/local/bin/herald-healthcheck
# Re-declared: an ARG before the first FROM is visible to FROM lines only.
ARG BASE_IMAGE
ARG HERALD_VERSION=0.1.0
LABEL org.opencontainers.image.title="herald-nginx" \
      org.opencontainers.image.description="nginx in front of Herald (staging), from the deploy/ templates" \
      org.opencontainers.image.version="${HERALD_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
EXPOSE 80 443
# QUIT is nginx's graceful stop: requests in flight finish, WebSockets close when their request does.
STOPSIGNAL SIGQUIT
# A static file over TLS: nginx itself answers, whatever state the app container is in.
HEALTHCHECK --interval=5s --timeout=5s --retries=5 --start-period=30s \
  CMD ["python3", "/usr/local/bin/herald-healthcheck", "nginx"]
# No USER: the master runs as root to bind 80/443 and read the key, and Debian's nginx.conf drops the
# workers to www-data, exactly as on a production host.
ENTRYPOINT ["/usr/local/bin/herald-nginx-entrypoint"]
CMD ["nginx", "-g", "daemon off;"]

# ----------------------------------------------------------------------------------------------
# app: supervisord with uWSGI, daphne, the Celery worker and beat, as the unprivileged user herald.
FROM ${BASE_IMAGE} AS app
SHELL ["/bin/bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c"]
COPY deploy/docker/apt-install.sh /usr/local/sbin/herald-apt-install
# python3 + libpython3.11: the interpreter the virtualenv and uWSGI run on; ca-certificates: TLS out.
# No compiler: everything that compiles was built in the builder stage.
RUN herald-apt-install python3 libpython3.11 ca-certificates
# A fixed uid/gid, so files on volumes keep their owner across rebuilds.
RUN groupadd --system --gid 10001 herald \
 && useradd --no-log-init --no-create-home --uid 10001 --gid herald --home-dir /srv/herald --shell /usr/sbin/nologin herald \
 && install -d -o herald -g herald -m 0750 /run/herald /var/log/herald /var/lib/herald
ENV PATH=/srv/herald/.venv/bin:$PATH \
    PYTHONPATH=/srv/herald/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=herald.settings.production \
    HERALD_VAR_DIR=/var/lib/herald \
    HERALD_STATIC_ROOT=/var/lib/herald/static \
    HERALD_HOST_NAME=app
WORKDIR /srv/herald
# Slowest-changing first: the virtualenv (uv.lock), the rendered configs, then code and static files.
COPY --from=builder /srv/herald/.venv/ /srv/herald/.venv/
COPY --from=builder /tmp/rendered/app/ /etc/herald/
COPY deploy/supervisor/fatal_listener.py /srv/herald/deploy/supervisor/fatal_listener.py
COPY deploy/docker/healthcheck.py /usr/local/bin/herald-healthcheck
COPY --from=builder /var/lib/herald/static/ /var/lib/herald/static/
COPY app/ /srv/herald/app/
# Re-declared: an ARG before the first FROM is visible to FROM lines only.
ARG BASE_IMAGE
ARG HERALD_VERSION=0.1.0
LABEL org.opencontainers.image.title="herald-app" \
      org.opencontainers.image.description="Herald: live deploy notifications (uWSGI, daphne, Celery under supervisord)" \
      org.opencontainers.image.version="${HERALD_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# Numeric, so a runtime that checks for non-root (Kubernetes runAsNonRoot) can tell without /etc/passwd.
USER 10001:10001
# uWSGI (uwsgi protocol) and the shared daphne listener; only nginx connects, over the compose network.
EXPOSE 3031 8001
# supervisord stops its programs in reverse priority order on TERM: Celery's warm shutdown first
# (up to stopwaitsecs), so compose's stop_grace_period must be longer than that.
STOPSIGNAL SIGTERM
# supervisor says every program RUNNING, and /healthz answers 200 through uWSGI and through daphne.
HEALTHCHECK --interval=5s --timeout=15s --retries=6 --start-period=120s \
  CMD ["python3", "/usr/local/bin/herald-healthcheck", "app"]
CMD ["supervisord", "--nodaemon", "-c", "/etc/herald/supervisor/supervisord.conf"]
