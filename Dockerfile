# syntax=docker/dockerfile:1
#
# The growth-commerce engine: one image for the web process, the Celery worker and beat
# (docker-compose.yml picks the command). Build:  docker build -t growth-engine .
#
# Stage 1 installs the dependencies declared in pyproject.toml into a virtualenv, at the
# exact versions of requirements.lock (`-c`: the lock constrains versions, pyproject.toml
# chooses what is installed, so the dev tools in the lock stay out of the image).
# pyproject.toml declares no importable packages (`[tool.setuptools] packages = []`), so
# `pip install .` installs the dependencies plus the project's metadata only; the code
# itself is copied into /app in stage 2. Only pyproject.toml and the lock are copied
# first, so the dependency layer is rebuilt only when the dependencies change.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
COPY pyproject.toml requirements.lock ./
# psycopg[binary] ships its own libpq, so no compiler or libpq-dev is needed.
RUN pip install -c requirements.lock pip \
 && pip install -c requirements.lock .


FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    GUNICORN_BIND=0.0.0.0:8000

# An unprivileged user runs every process; the code stays owned by root (read-only to it).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY . .

# Static files (admin, Swagger UI from drf-spectacular-sidecar) are collected at build
# time and served by WhiteNoise. config.settings.production demands SECRET_KEY,
# DATABASE_URL and ALLOWED_HOSTS; collectstatic touches none of them for real, so
# build-only placeholders are given here and never end up in the image's environment.
RUN SECRET_KEY=build-only-not-a-secret \
    DATABASE_URL=postgres://build@127.0.0.1:5432/build \
    ALLOWED_HOSTS=localhost BILLING_GATEWAY=test \
    python manage.py collectstatic --noinput -v 0

USER app

EXPOSE 8000

# Liveness of the web process (python:3.11-slim has no curl). The request's Host is
# 127.0.0.1:8000, so ALLOWED_HOSTS must include 127.0.0.1 or the check gets a 400.
# docker-compose.yml replaces it for the worker and beat containers (same image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]

# config/gunicorn.py: sync workers (GUNICORN_WORKERS, default 2 x cores), each with a
# small psycopg pool (DB_POOL_MAX); GUNICORN_BIND is set above to listen on all interfaces.
CMD ["gunicorn", "config.wsgi", "--config", "config/gunicorn.py"]
