# make run   -> the whole product (API + admin + worker + beat) on http://127.0.0.1:8000
# make test  -> lint (ruff check + format, mypy), migration check, system check, schema check,
#              pytest (real services)
# make bench -> benchmarks (numbers only, never fails on timing)
# make lock  -> regenerate requirements.lock (exact versions) from pyproject.toml
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LOCAL := DJANGO_SETTINGS_MODULE=config.settings.local
TESTENV := DJANGO_SETTINGS_MODULE=config.settings.test
TEST_WORKERS ?= 2

.PHONY: venv services migrate run demo test lint lock bench fuzz load clean

# Exact versions from requirements.lock (what CI tested, pip included), then the project
# itself without resolving anything again.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

services:
	bash scripts/services.sh growth

migrate: venv services
	$(LOCAL) $(PY) manage.py migrate --noinput

demo: migrate
	$(LOCAL) $(PY) manage.py collectstatic --noinput -v 0
	$(LOCAL) $(PY) manage.py seed_demo

run: demo
	$(LOCAL) $(VENV)/bin/honcho start -f Procfile

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TESTENV) $(VENV)/bin/mypy

# requirements.lock: pyproject.toml's dependencies plus the dev extra, pinned exactly.
# Existing pins are kept; LOCK_ARGS="--upgrade" (or "--upgrade-package NAME") moves them.
# --strip-extras keeps it usable as a constraints file too (the Dockerfile's -c).
lock: venv
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --extra dev \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --no-emit-trusted-host --output-file requirements.lock $(LOCK_ARGS) pyproject.toml

test: venv services
	bash scripts/browser.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TESTENV) $(VENV)/bin/mypy
	$(TESTENV) $(PY) manage.py makemigrations --check --dry-run
	$(TESTENV) $(PY) manage.py check
	# Production settings must pass the deployment checklist; dummy values, not secrets.
	DJANGO_SETTINGS_MODULE=config.settings.production ALLOWED_HOSTS=example.com \
	  DATABASE_URL=postgres://check-deploy@127.0.0.1:5432/unused BILLING_GATEWAY=test \
	  SECRET_KEY=check-deploy-only-not-a-secret-4f9c2e7a1b8d6053e9a7c4b2d1f08e6a \
	  $(PY) manage.py check --deploy --fail-level WARNING
	$(TESTENV) $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	# Two processes, each with its own test database and Redis database (config/settings/
	# test.py); --dist load keeps pytest-django's order (transactional tests last) per worker.
	$(TESTENV) $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist load -m "not faults"
	$(TESTENV) $(VENV)/bin/pytest -q -m faults

# API fuzzing with many more examples than make test (schemathesis, every endpoint, every
# check but positive_data_acceptance, and the stateful phase over linked calls).
# TEST_DB_NAME and TEST_REDIS_URL pass through from the environment like for make test.
fuzz: venv services
	$(TESTENV) FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} \
	  FUZZ_STATEFUL_EXAMPLES=$${FUZZ_STATEFUL_EXAMPLES:-300} \
	  FUZZ_STATEFUL_STEPS=$${FUZZ_STATEFUL_STEPS:-10} \
	  $(VENV)/bin/pytest -q tests/test_fuzz_api.py

# HTTP load test of the realistic checkout mix (numbers only, like make bench).
load: migrate
	bash bench/load/run.sh

bench: migrate
	bash bench/run.sh
	bash bench/entitlements.sh

clean:
	rm -rf $(VENV) staticfiles
