#!/usr/bin/env bash
# Billing benchmark (issue 13), standalone: N due monthly renewals (BENCH_BILLING_SUBS,
# 100,000) through the real beat job `billing.run_due` on 2 Celery worker processes, next
# to a plain SQL INSERT ... SELECT of the same invoice rows; then subscribe over HTTP
# (2,000 new customers, 8 client threads) for p50/p95/p99. bench/billing.py has the
# details.
#
# Uses the bench database growth_bench (created and migrated if needed, as bench/run.sh),
# Redis db 3 (cache) and its own broker, Redis db 10 (the workers listen on its default
# queue, so the task the job fans out reaches them; flushed before and after). It only
# adds and then deletes its own rows (plan bench-billing, customers bench-billing-*), but
# it loads PostgreSQL and the CPUs: run it alone for numbers worth comparing.
#
# Knobs: BENCH_BILLING_SUBS (100000), BENCH_BILLING_WORKERS (2 Celery workers, and
# BILLING_RENEWAL_PARALLELISM), BENCH_BILLING_HTTP_REQUESTS (2000),
# BENCH_BILLING_HTTP_CONCURRENCY (8), BENCH_BILLING_GUNICORN_WORKERS (4), BENCH_PORT (8090),
# BENCH_BILLING_SKIP_HTTP=1 / BENCH_BILLING_SKIP_RENEWALS=1 (one half only),
# BENCH_BILLING_TASK_TIME_LIMIT (the workers' Celery soft time limit in s; default the
# product's CELERY_TASK_SOFT_TIME_LIMIT, 300 s: a runner still renewing then is stopped,
# and the run reports the hit and stalls, as one beat send would in production).
# Output: a table on stdout, JSON lines in bench/out/billing-<run>.jsonl (or $1; bench/run.sh
# passes its RESULTS file). Exit status: 0, 1 when a check is not exact, 2 on setup failure.
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS=${1:-$OUT/billing-$RUN_ID.jsonl}
LOG="$OUT/billing-$RUN_ID.log"

PORT=${BENCH_PORT:-8090}
SUBS=${BENCH_BILLING_SUBS:-100000}
CELERY_WORKERS=${BENCH_BILLING_WORKERS:-2}
HTTP_REQUESTS=${BENCH_BILLING_HTTP_REQUESTS:-2000}
HTTP_CONCURRENCY=${BENCH_BILLING_HTTP_CONCURRENCY:-8}
GUNICORN_N=${BENCH_BILLING_GUNICORN_WORKERS:-4}

DB=growth_bench
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/3
export DJANGO_SETTINGS_MODULE=config.settings.bench
export GUNICORN_BIND="127.0.0.1:$PORT"
# The subscribe calls and the workers use the test gateway with no latency and no faults.
export BILLING_GATEWAY=test BILLING_TEST_GATEWAY_LATENCY_MS=0 BILLING_TEST_GATEWAY_FAILURE=none
unset GUNICORN_ACCESSLOG

log() { printf '[billing %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 2; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# shellcheck source=../scripts/harness.sh
. scripts/harness.sh
# No Redis database is flushed here: db 3 may be in use by a bench/run.sh at the same time;
# bench/billing.py flushes only its own broker db.
prepare_database

trap stop_gunicorn EXIT  # scripts/harness.sh
trap 'exit 130' INT TERM

FAILED=0
if [ "${BENCH_BILLING_SKIP_RENEWALS:-0}" != 1 ]; then
  busy=$(background_busy)
  log "renewals: $SUBS due subscriptions, $CELERY_WORKERS Celery workers (background CPU busy ${busy}%)"
  limit=()
  [ -n "${BENCH_BILLING_TASK_TIME_LIMIT:-}" ] && limit=(--task-time-limit "$BENCH_BILLING_TASK_TIME_LIMIT")
  $PY bench/billing.py renewals "$RESULTS" --subs "$SUBS" --workers "$CELERY_WORKERS" \
    --run-id "$RUN_ID" --background-busy "$busy" "${limit[@]}" 2>>"$LOG"
  rc=$?
  [ "$rc" = 2 ] && die "renewals: cannot set up (see $LOG)"
  [ "$rc" = 0 ] || { log "renewals: NOT EXACT or failed (exit $rc, see $LOG)"; FAILED=1; }
fi

if [ "${BENCH_BILLING_SKIP_HTTP:-0}" != 1 ]; then
  sql -c "delete from core_apikey where name = 'bench-billing'"
  KEY=$($PY manage.py create_api_key bench-billing --scopes storefront 2>>"$LOG" | tail -n 1)
  [ -n "$KEY" ] || die "create_api_key printed nothing (see $LOG)"
  log "gunicorn: $GUNICORN_N sync workers on 127.0.0.1:$PORT"
  start_gunicorn "$GUNICORN_N"
  busy=$(background_busy)
  log "subscribe over HTTP: $HTTP_REQUESTS new customers, $HTTP_CONCURRENCY client threads" \
      "(background CPU busy ${busy}%)"
  timeout 900 $PY bench/billing.py subscribe "$RESULTS" --port "$PORT" --key "$KEY" \
    --requests "$HTTP_REQUESTS" --concurrency "$HTTP_CONCURRENCY" --workers "$GUNICORN_N" \
    --run-id "$RUN_ID" --background-busy "$busy" 2>>"$LOG"
  rc=$?
  stop_gunicorn
  [ "$rc" = 0 ] || { log "subscribe: MISMATCH or failed (exit $rc, see $LOG)"; FAILED=1; }
  sql -c "delete from core_apikey where name = 'bench-billing'"
fi

$PY bench/billing.py cleanup 2>>"$LOG" || log "cleanup failed (see $LOG)"
log "results: $RESULTS (log: $LOG)"
exit "$FAILED"
