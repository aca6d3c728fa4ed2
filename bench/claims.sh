#!/usr/bin/env bash
# Flash-sale claims over HTTP (issue 5): 10,000 claim requests from 2,000 retrying
# customers for 1,000 units; then PostgreSQL must hold exactly 1,000 distinct claims and
# the campaign counter 1,000. Prints requests/s, p50/p99 and the statuses; appends JSON
# lines to bench/out/claims-RUN.jsonl (and to $BENCH_RESULTS when the lead's run.sh sets it).
#
# Standalone: bash bench/claims.sh. Same setup as bench/run.sh: database growth_bench
# (migrated), Redis db 3 (cache) / 4 (broker), config.settings.bench served by gunicorn
# (config/gunicorn.py, sync workers), a storefront API key from manage.py create_api_key.
#
# Knobs: BENCH_PORT (8089), BENCH_WORKERS ("4"), BENCH_CLAIM_REQUESTS (10000),
# BENCH_CLAIM_CUSTOMERS (2000), BENCH_CLAIM_UNITS (1000), BENCH_CLAIM_PROCESSES (2),
# BENCH_CLAIM_THREADS (16 per process), DB_POOL_MAX / DB_POOL_MIN (passed through).
# Exit status: 0, or 1 when the claims are not exact (or setup failed).
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS="$OUT/claims-$RUN_ID.jsonl"
LOG="$OUT/claims-$RUN_ID.log"
: >"$RESULTS"

PORT=${BENCH_PORT:-8089}
WORKERS_LIST=${BENCH_WORKERS:-"4"}
REQUESTS=${BENCH_CLAIM_REQUESTS:-10000}
CUSTOMERS=${BENCH_CLAIM_CUSTOMERS:-2000}
UNITS=${BENCH_CLAIM_UNITS:-1000}
PROCESSES=${BENCH_CLAIM_PROCESSES:-2}
THREADS=${BENCH_CLAIM_THREADS:-16}

DB=growth_bench
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/3
export CELERY_BROKER_URL=redis://127.0.0.1:6379/4
export DJANGO_SETTINGS_MODULE=config.settings.bench
export GUNICORN_BIND="127.0.0.1:$PORT"
unset GUNICORN_ACCESSLOG

log() { printf '[claims %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# shellcheck source=../scripts/harness.sh
. scripts/harness.sh
prepare_database 3

sql -c "delete from core_apikey where name = 'bench-claims'"
KEY=$($PY manage.py create_api_key bench-claims --scopes storefront 2>>"$LOG" | tail -n 1)
[ -n "$KEY" ] || die "create_api_key printed nothing (see $LOG)"

trap stop_gunicorn EXIT  # scripts/harness.sh
trap 'exit 130' INT TERM



FAILED=0
for workers in $WORKERS_LIST; do
  CAMPAIGN=$($PY bench/claims.py setup --units "$UNITS" 2>>"$LOG" | tail -n 1)
  [ -n "$CAMPAIGN" ] || die "creating the bench campaign failed (see $LOG)"
  start_gunicorn "$workers"
  # Warm every worker (imports, pool connection, API key cache) on the read endpoint.
  for _ in $(seq 1 $((workers * 10))); do
    curl -s -o /dev/null -H "Authorization: Api-Key $KEY" \
      "http://127.0.0.1:$PORT/api/v1/campaigns/$CAMPAIGN"
  done
  busy=$(background_busy)
  log "load: $REQUESTS claims, $CUSTOMERS customers, $UNITS units, $workers workers," \
      "$((PROCESSES * THREADS)) client connections (background CPU busy ${busy}%)"
  line=$(timeout 600 $PY bench/claims.py load --campaign "$CAMPAIGN" --key "$KEY" \
    --port "$PORT" --requests "$REQUESTS" --customers "$CUSTOMERS" \
    --processes "$PROCESSES" --threads "$THREADS" --workers "$workers" \
    --run-id "$RUN_ID-w$workers" --background-busy "$busy" --out "$RESULTS" 2>>"$LOG" \
    | tail -n 1)
  stop_gunicorn
  [ -n "$line" ] || { log "load: NO RESULT (see $LOG)"; FAILED=1; continue; }
  echo "  $line"
  check=$($PY bench/claims.py check --campaign "$CAMPAIGN" --load-line "$line" \
    --out "$RESULTS" 2>>"$LOG" | tail -n 1) || FAILED=1
  echo "  $check"
  $PY - "$line" "$check" <<'EOF2'
import json, sys
load, check = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rps, p99 = load["requests_per_s"], load["p99_ms"]
print(f"  workers {load['workers']}: {load['completed']} requests in {load['wall_s']} s = "
      f"{rps} req/s, p50 {load['p50_ms']} ms, p99 {p99} ms, statuses {load['status']}")
print(f"  claims {check['claims']} (distinct customers {check['distinct_customers']}, "
      f"tokens {check['distinct_tokens']}), claimed {check['claimed']} / "
      f"{check['inventory']} -> {check['verdict']}")
print(f"  target >= 1,500 req/s and p99 < 100 ms: "
      f"{'met' if rps >= 1500 and p99 < 100 else 'NOT met'}")
EOF2
done
[ -n "${BENCH_RESULTS:-}" ] && cat "$RESULTS" >>"$BENCH_RESULTS"
log "results: $RESULTS (log: $LOG)"
exit "$FAILED"
