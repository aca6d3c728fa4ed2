#!/usr/bin/env bash
# Start PostgreSQL and Redis when they are not answering, and create the database.
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
if ! pg_isready -h "$PGHOST" -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h "$PGHOST" -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
DB=${1:-growth}
if ! psql -h "$PGHOST" -U postgres -Atc "select 1 from pg_database where datname='$DB'" | grep -q 1; then
  createdb -h "$PGHOST" -U postgres "$DB"
fi
