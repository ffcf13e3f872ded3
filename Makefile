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
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Debian packages each job needs; ensure-packages.sh installs only the missing ones.
RUN_PACKAGES := redis-server nginx
TEST_PACKAGES := $(RUN_PACKAGES) chromium

.PHONY: help venv test lint check-deploy
.PHONY: run stop status logs reload

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
	$(VENV)/bin/ruff check app tests
	$(VENV)/bin/pytest

lint: venv ## Static checks only.
	$(VENV)/bin/ruff check app tests

check-deploy: venv ## `manage.py check --deploy` with production settings (needs no real secrets).
	cd app && DJANGO_SETTINGS_MODULE=herald.settings.production \
	  DJANGO_SECRET_KEY="check-deploy-$$(head -c 32 /dev/urandom | base64 | tr -d '/+=')" \
	  DJANGO_ALLOWED_HOSTS=herald.example.com \
	  ../$(VENV)/bin/python manage.py check --deploy --fail-level WARNING

# ---------------------------------------------------------------------------- Single-host bundle
# The production topology on this machine (nginx → uWSGI + daphne, Celery, redis-server), rendered
# from deploy/ into ./run; docs/runbook.md says when to use each target.
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
