# Herald's command index. `make help` lists the targets; docs/runbook.md says when to use each.
# Every target installs what it needs (Debian packages via apt, Python packages from uv.lock).

SHELL := /bin/bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
export UV_PYTHON_DOWNLOADS := never
# Install every module as bytecode, as the image does (Dockerfile). A process whose environment sets
# PYTHONDONTWRITEBYTECODE (these build machines do) otherwise compiles Django from source at each
# start: 2.4 s instead of 0.8 s of CPU for every uWSGI worker, daphne and Celery child (docs/benchmarks.md).
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Debian packages each job needs; ensure-packages.sh installs only the missing ones.
RUN_PACKAGES := redis-server nginx
TEST_PACKAGES := $(RUN_PACKAGES) chromium postgresql

.PHONY: help venv test lint check-deploy
.PHONY: run stop status logs reload rotate-secret

help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------- Python environment
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $@

venv: $(VENV)/.synced ## Create .venv from uv.lock (dev tools included).

# ---------------------------------------------------------------------------- Tests
test: venv ## Run every test (installs what it needs); CI runs exactly this.
	scripts/lib/ensure-packages.sh $(TEST_PACKAGES)
	$(VENV)/bin/ruff check app tests bench
	$(VENV)/bin/ruff format --check app/deploys app/herald app/herald_cli tests/deploys tests/herald tests/scripts
	$(MAKE) --no-print-directory check-deploy
	@# The Django tests run on PostgreSQL, production's database, in a throwaway cluster.
	@# Without PYTEST_ARGS the fleet and Docker suites run beside the rest (scripts/lib/run-tests.sh).
	pg=$$(mktemp -d)/postgres; url=$$(scripts/lib/test-postgres.sh start "$$pg"); \
	  trap 'scripts/lib/test-postgres.sh stop "'"$$pg"'"' EXIT; \
	  HERALD_TEST_DATABASE_URL="$$url" VENV=$(VENV) scripts/lib/run-tests.sh $(PYTEST_ARGS)

lint: venv ## Static checks only.
	$(VENV)/bin/ruff check app tests bench

check-deploy: venv ## `manage.py check --deploy` with production settings (needs no real secrets).
	cd app && DJANGO_SETTINGS_MODULE=herald.settings.production \
	  DJANGO_SECRET_KEY="check-deploy-$$(head -c 32 /dev/urandom | base64 | tr -d '/+=')" \
	  DJANGO_ALLOWED_HOSTS=herald.example.com \
	  ../$(VENV)/bin/python manage.py check --deploy --fail-level WARNING

# ---------------------------------------------------------------------------- Single-host bundle
# The production topology on this machine (nginx → uWSGI + daphne, Celery, redis-server), rendered
# from deploy/ into ./run; docs/runbook.md says when to use each target.
# The stack tests also check the systemd unit (systemd-analyze) and a TLS site (openssl for a test cert).
TEST_PACKAGES += systemd openssl
run: venv ## Start Herald locally (nginx, uWSGI, daphne ×2, Celery, redis) and a demo deploy; rerun-safe.
	scripts/lib/ensure-packages.sh $(RUN_PACKAGES)
	scripts/run.sh

stop: ## Stop everything `make run` started.
	scripts/stop.sh

status: ## Show each program's state, uWSGI workers and /healthz; non-zero if anything is down.
	scripts/status.sh

logs: ## Follow the local run's logs (PROGRAM=worker for one program).
	scripts/logs.sh $(PROGRAM)

reload: ## Graceful reload: new code and config, no failed request.
	scripts/reload.sh

rotate-secret: ## Replace a generated secret while serving: SECRET=secret-key|redis-password.
	scripts/rotate-secret.sh $(SECRET)

# ---------------------------------------------------------------------------- Docker staging
# docker-compose.prod.yml: production's layout in containers, built FROM Debian without a registry.
# docs/runbook.md "Staging with Docker" says when to use each target.
COMPOSE ?= docker-compose
STAGING_ENV ?= .env.staging
STAGING := $(COMPOSE) --env-file $(STAGING_ENV) -f docker-compose.prod.yml
HERALD_BASE_IMAGE ?= herald/debian-base:bookworm
# Extra CA bundle the image build trusts for PyPI (a TLS-inspecting proxy); empty for none.
HERALD_BUILD_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)

.PHONY: base-image image staging-config staging-up staging-down staging-ps staging-logs test-docker

base-image: ## Debian bookworm base image from debootstrap (air-gapped friendly); skipped when it exists.
	scripts/lib/ensure-packages.sh debootstrap docker-compose
	scripts/lib/ensure-dockerd.sh
	scripts/lib/docker-base-image.sh $(HERALD_BASE_IMAGE)

image: base-image ## Build the app, nginx, redis and postgres images (layers cached).
	HERALD_BASE_IMAGE=$(HERALD_BASE_IMAGE) HERALD_BUILD_CA=$(HERALD_BUILD_CA) COMPOSE="$(COMPOSE)" \
	  scripts/lib/docker-build-images.sh

staging-config: ## Validate docker-compose.prod.yml with .env.staging (STAGING_ENV=file for another).
	$(STAGING) config --quiet

staging-up: image ## Start the staging stack from .env.staging and wait until it is healthy.
	@test -f $(STAGING_ENV) || { echo "no $(STAGING_ENV): cp .env.staging.example $(STAGING_ENV) and set its secrets" >&2; exit 1; }
	$(STAGING) up -d
	scripts/lib/docker-wait-healthy.sh "$$($(STAGING) ps -q nginx)"

staging-down: ## Stop the staging stack (volumes kept; `make staging-down DOWN_FLAGS=-v` drops data too).
	$(STAGING) down $(DOWN_FLAGS)

staging-ps: ## Show the staging containers and their health.
	$(STAGING) ps

staging-logs: ## Follow the staging logs (SERVICE=app for one service).
	$(STAGING) logs -f --tail=100 $(SERVICE)

test-docker: venv ## Only the Docker staging tests (builds what they need).
	$(VENV)/bin/pytest tests/docker

# ---- Ansible fleet
# Provision, deploy and roll back a fleet of Debian hosts (ansible/, docs/runbook.md "Fleet operations
# with Ansible"). ENV names an inventory under ansible/inventories/. Secrets come from the inventory's
# vault (ANSIBLE_VAULT_PASSWORD_FILE); HERALD_URL + HERALD_TOKEN make the run report itself to Herald.
.PHONY: provision deploy rollback fleet-env fleet-lint test-fleet
ENV ?=
VERSION ?=
# Where the release's app/ comes from (the checkout by default).
APP_SRC ?= app
# Extra ansible-playbook arguments, e.g. ANSIBLE_ARGS="--check --diff" or "--limit app2".
ANSIBLE_ARGS ?=
FLEET_PLAYBOOK = ANSIBLE_CONFIG=ansible/ansible.cfg HERALD_REPORT_ENVIRONMENT=$(ENV) \
  $(VENV)/bin/ansible-playbook -i ansible/inventories/$(ENV)
fleet-env:
	@test -n "$(ENV)" && test -d "ansible/inventories/$(ENV)" || \
	  { echo "ENV must name an inventory: ENV=$$(ls ansible/inventories | grep -v example | paste -sd'|')" >&2; exit 2; }

provision: venv fleet-env ## Provision every host of a fleet (idempotent): make provision ENV=staging
	$(FLEET_PLAYBOOK) ansible/site.yml $(ANSIBLE_ARGS)

deploy: venv fleet-env ## Build VERSION here and roll it out host by host: make deploy ENV=staging VERSION=1.4.2
	@test -n "$(VERSION)" || { echo "usage: make deploy ENV=<env> VERSION=<version>" >&2; exit 2; }
	eval "$$(scripts/lib/fleet-build-release.sh '$(VERSION)' '$(APP_SRC)')" && \
	  $(FLEET_PLAYBOOK) ansible/deploy.yml -e herald_version='$(VERSION)' \
	    -e app_wheelhouse="$$HERALD_WHEELHOUSE" -e app_release_archive="$$HERALD_RELEASE_ARCHIVE" $(ANSIBLE_ARGS)

rollback: venv fleet-env ## Return to the previous release (or VERSION=...): make rollback ENV=staging
	$(FLEET_PLAYBOOK) ansible/rollback.yml $(if $(VERSION),-e herald_version='$(VERSION)') $(ANSIBLE_ARGS)

fleet-lint: venv ## ansible-lint (production profile) on ansible/.
	cd ansible && ../$(VENV)/bin/ansible-lint

test-fleet: venv ## Only the Ansible fleet tests (three systemd containers; builds what they need).
	$(VENV)/bin/pytest tests/ansible

# ---- Benchmarks
# bench/ runs issue 7's scenarios against Herald (the deploy/ topology on loopback, PostgreSQL), the
# tutorial-style baseline and the ceiling, side by side; docs/benchmarks.md explains the figures.
# A tiny smoke of the same harness runs inside `make test` (tests/bench). Bounded: ≤ 20 min.
.PHONY: bench
BENCH_PROFILE ?= full
# e.g. BENCH_ARGS='--targets herald --set held=2000' or --note 'other jobs running'
BENCH_ARGS ?=
# `venv` brings the bench group too (dev includes it; pyproject.toml), so make test's smoke run uses
# the same client.
bench: venv ## Benchmarks (≤ 20 min): JSON + table + chart in bench/results/, figures into docs/benchmarks.md.
	scripts/lib/ensure-packages.sh $(RUN_PACKAGES) postgresql
	$(VENV)/bin/python -m bench --profile $(BENCH_PROFILE) --chart --update-docs $(BENCH_ARGS)
