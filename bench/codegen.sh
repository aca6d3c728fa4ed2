#!/usr/bin/env bash
# Bulk code generation benchmark, standalone: 1,000,000 codes through the real Celery
# task (a worker subprocess) next to a raw psycopg COPY of 1,000,000 random strings into
# a bare uniquely indexed table (bench/codegen.py has the details).
#
# Uses the bench database growth_bench (created and migrated if needed, as bench/run.sh),
# Redis db 3 (cache) and db 4 (broker; the worker listens on its own queue, codegen_bench).
# It only adds and then deletes its own rows (coupon BENCHGEN and its batches), but it
# loads PostgreSQL and the CPUs: run it alone for numbers worth comparing.
# Knobs: BENCH_CODEGEN_COUNT (1000000), BENCH_CODEGEN_REPEAT (1).
# Output: a table on stdout, JSON lines in bench/out/codegen-<run>.jsonl (or $1).
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS=${1:-$OUT/codegen-$RUN_ID.jsonl}
LOG="$OUT/codegen-$RUN_ID.log"

DB=growth_bench
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/3
export CELERY_BROKER_URL=redis://127.0.0.1:6379/4
export DJANGO_SETTINGS_MODULE=config.settings.bench

log() { printf '[codegen %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 2; }

# shellcheck source=../scripts/harness.sh
. scripts/harness.sh
# No Redis database is flushed: nothing here depends on the cache, and db 3 may be in use
# by a bench/run.sh running at the same time.
prepare_database

log "generating ${BENCH_CODEGEN_COUNT:-1000000} codes (raw COPY, then the task)"
$PY bench/codegen.py "$RESULTS" --count "${BENCH_CODEGEN_COUNT:-1000000}" \
  --repeat "${BENCH_CODEGEN_REPEAT:-1}" --run-id "$RUN_ID" 2>>"$LOG"
rc=$?
log "results: $RESULTS (log: $LOG)"
exit $rc
