#!/usr/bin/env bash
# make bench: throughput and latency of the checkout endpoints on this machine.
#
# Numbers only: a slow run is reported, never failed. The script fails only when it
# cannot set up (no database, no wrk, the server does not start). Set BENCH_STRICT=1 to
# also exit non-zero when the hot-coupon race is not exact.
#
#   1. wrk (installed with apt-get if missing) and pgbench
#   2. database growth_bench (migrated), Redis db 3 (cache) and db 4 (broker)
#   3. 100,000 coupons + codes seeded set-wise (bench/seed.sql), state reset (reset.sql)
#   4. a storefront API key (manage.py create_api_key, last line)
#   5. for each gunicorn worker count: wrk on GET /bench/bare (the ceiling) and on
#      POST /api/v1/coupons/validate (BENCH25, 20-line cart) at each connection count,
#      then the hot-coupon race (bench/apply_race.py: 1,500 applies on HOT1000, limit
#      1,000) checked against PostgreSQL
#   6. pgbench: apply's SQL alone (bench/apply_tx.sql) at 4, 8 and 32 clients, and only
#      its single write statement (bench/apply_tx_short.sql), the floor, for comparison
#   7. promotions: POST /api/v1/promotions/evaluate's work on a 20-line cart with 3 typed
#      codes against N active auto-apply promotions (bench/promotions_seed.sql):
#      in-process for N = 10, 100, 1,000, 10,000 (bench/promotions.py), then over HTTP at
#      N = 1,000 with an open-loop client at a fixed 200 requests/s and a short ramp
#      (bench/promotions_http.py); the bench promotions are removed afterwards
#   8. bulk codes: 1,000,000 through the real task vs a raw COPY (bench/codegen.py)
#   9. flash-sale claims over HTTP, exact count checked (bench/claims.sh)
#  10. summary table (bench/summary.py) -> stdout and bench/out/latest.txt
#  11. abuse protection + analytics overhead (issue 6): wrk on validate (with a shopper
#      context) and on apply (new order, customer and Idempotency-Key per request) with
#      ANALYTICS_ENABLED and ABUSE_RATE_LIMITS_ENABLED off and on, in the order off, on,
#      on, off, twice (BENCH_OVERHEAD_ROUNDS; a drift of the machine cancels out of the
#      means);
#      runs before the summary (BENCH_ONLY=overhead runs steps 1-4 and 11 only;
#      BENCH_OVERHEAD_WORKERS (4), BENCH_OVERHEAD_CONNS (16), BENCH_DURATION)
#  12. billing (issue 13, bench/billing.sh): 100,000 due monthly renewals
#      (BENCH_BILLING_SUBS) through the real beat job billing.run_due sent once to 2 Celery
#      workers (their own broker, Redis db 10), checked exact, against a plain SQL
#      INSERT ... SELECT of the same invoice rows; then subscribe over HTTP (2,000 new
#      customers, 8 client threads: p50/p95/p99); runs before the summary
#      (BENCH_ONLY=billing runs steps 1-4 and 12 only; the knobs: bench/billing.sh)
#
# Knobs (environment): BENCH_PORT (8088), BENCH_WORKERS ("4 5"), BENCH_CONNS ("8 32"),
# BENCH_DURATION (10 s per wrk run), BENCH_PG_CLIENTS ("4 8 32"), BENCH_PG_DURATION (10),
# BENCH_APPLY_REQUESTS (1500), BENCH_APPLY_CONCURRENCY (32), BENCH_APPLY_DEADLINE (60 s),
# BENCH_PROFILE=1 (also profile validate and apply in-process, bench/profile_path.py),
# BENCH_WAIT_QUIET=SECONDS (first wait up to that long for other processes to go idle;
# step 7 waits again before its HTTP run),
# DB_POOL_MAX / DB_POOL_MIN (the product's pool settings, passed through).
# BENCH_ONLY=promotions runs steps 1-4 (without wrk, pgbench and the 100,000-coupon seed)
# and 7 only; BENCH_ONLY=codegen and BENCH_ONLY=claims likewise run only 8 or 9;
# BENCH_ONLY=checkout runs steps 1-6; BENCH_ONLY=billing runs step 12. Step 7's knobs:
# BENCH_PROMO_NS ("10 100 1000 10000"), BENCH_PROMO_CALLS (2000 timed calls per N),
# BENCH_PROMO_BUDGET (at most 20 s of timed calls per N), BENCH_PROMO_HTTP_N (1000),
# BENCH_PROMO_RATE (200 requests/s), BENCH_PROMO_DURATION (15 s),
# BENCH_PROMO_RAMP ("100 150 250 300 400 600 800" requests/s, 5 s each, up to the first
# not sustained; "" for none); the HTTP server
# runs the first of BENCH_WORKERS. BENCH_PROFILE=1 also profiles the in-process calls.
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS="$OUT/results-$RUN_ID.jsonl"
LOG="$OUT/run-$RUN_ID.log"
: >"$RESULTS"
# Keep the files of the last 10 runs (bench/out/ is git-ignored).
for pattern in 'results-*.jsonl' 'run-*.log' 'summary-*.txt' 'profile-*.txt'; do
  find "$OUT" -maxdepth 1 -name "$pattern" -printf '%T@ %p\n' | sort -rn | tail -n +11 \
    | cut -d' ' -f2- | xargs -r rm -f
done

PORT=${BENCH_PORT:-8088}
WORKERS_LIST=${BENCH_WORKERS:-"4 5"}
CONNS=${BENCH_CONNS:-"8 32"}
DURATION=${BENCH_DURATION:-10}
PG_CLIENTS=${BENCH_PG_CLIENTS:-"4 8 32"}
PG_DURATION=${BENCH_PG_DURATION:-10}
APPLY_REQUESTS=${BENCH_APPLY_REQUESTS:-1500}
APPLY_CONCURRENCY=${BENCH_APPLY_CONCURRENCY:-32}
APPLY_DEADLINE=${BENCH_APPLY_DEADLINE:-60}
HOT_LIMIT=1000
ONLY=${BENCH_ONLY:-}
case "$ONLY" in ""|checkout|promotions|codegen|claims|overhead|billing) ;;
  *) echo "BENCH_ONLY must be checkout, promotions, codegen, claims, overhead or billing" >&2
     exit 2 ;; esac
PROMO_NS=${BENCH_PROMO_NS:-"10 100 1000 10000"}
PROMO_CALLS=${BENCH_PROMO_CALLS:-2000}
PROMO_BUDGET=${BENCH_PROMO_BUDGET:-20}
PROMO_HTTP_N=${BENCH_PROMO_HTTP_N:-1000}
PROMO_RATE=${BENCH_PROMO_RATE:-200}
PROMO_DURATION=${BENCH_PROMO_DURATION:-15}
PROMO_RAMP=${BENCH_PROMO_RAMP-"100 150 250 300 400 600 800"}

DB=growth_bench
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/3
export CELERY_BROKER_URL=redis://127.0.0.1:6379/4
export DJANGO_SETTINGS_MODULE=config.settings.bench
export GUNICORN_BIND="127.0.0.1:$PORT"
unset GUNICORN_ACCESSLOG

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
part() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }  # part checkout|promotions: run it?
die() { log "ERROR: $*"; exit 1; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# --- 1. tools ---------------------------------------------------------------------------
if part checkout || part overhead; then
  if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y -q wrk >>"$LOG" 2>&1 \
      || { apt-get update -q >>"$LOG" 2>&1 && apt-get install -y -q wrk >>"$LOG" 2>&1; } \
      || die "could not install wrk (see $LOG)"
  fi
  PGBENCH=$(command -v pgbench || echo /usr/bin/pgbench)
  [ -x "$PGBENCH" ] || die "pgbench not found"
fi

# --- 2. database, cache (the bench's own cache db 3) -------------------------------------
# shellcheck source=../scripts/harness.sh
. scripts/harness.sh
prepare_database 3

# --- 3. seed and reset ------------------------------------------------------------------
# Auto promotions left by an interrupted step 7 would join every checkout call: remove.
sql -v n=0 -f bench/promotions_seed.sql >/dev/null || die "removing bench promotions failed"
seed_s=0
if part checkout || part overhead; then
  log "seeding 100,000 coupons (set-wise SQL)"
  seed_started=$(date +%s%N)
  sql -f bench/seed.sql || die "seed failed"
  seed_s=$(awk -v ns=$(( $(date +%s%N) - seed_started )) 'BEGIN { printf "%.1f", ns / 1e9 }')
  sql -f bench/reset.sql || die "reset failed"
  read -r HOT_ID HOT_CODE_ID <<<"$(sql -F ' ' -c \
    "select c.id, k.id from coupons_coupon c join coupons_code k on k.coupon_id = c.id
      where c.code = 'HOT1000'")"
  read -r PG_ID PG_CODE_ID <<<"$(sql -F ' ' -c \
    "select c.id, k.id from coupons_coupon c join coupons_code k on k.coupon_id = c.id
      where c.code = 'PGHOT'")"
  [ -n "${HOT_ID:-}" ] && [ -n "${PG_ID:-}" ] || die "named coupons missing after seed"
fi

# --- 4. API key -------------------------------------------------------------------------
sql -c "delete from core_apikey where name in ('bench', 'bench-profile')"
KEY=$($PY manage.py create_api_key bench --scopes storefront 2>>"$LOG" | tail -n 1)
[ -n "$KEY" ] || die "create_api_key printed nothing"
export BENCH_API_KEY=$KEY

# --- environment record -----------------------------------------------------------------
settings_json=$($PY - <<'EOF' 2>>"$LOG"
import json, django
django.setup()
from django.conf import settings as s
pool = s.DATABASES["default"].get("OPTIONS", {}).get("pool") or {}
print(json.dumps({"db_pool_min": pool.get("min_size"), "db_pool_max": pool.get("max_size"),
                  "api_key_cache_seconds": s.API_KEY_CACHE_SECONDS,
                  "coupon_local_cache_seconds": s.COUPON_LOCAL_CACHE_SECONDS}))
EOF
)
[ -n "$settings_json" ] || settings_json='{}'
$PY - "$RESULTS" "$settings_json" <<EOF
import json, os, sys
settings = json.loads(sys.argv[2])
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
row = {"kind": "env", "run_id": "$RUN_ID", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
       "cpus": os.cpu_count(), "cpu_model": model, "mem_gb": mem,
       "postgres": "$(sql -c 'show server_version' | cut -d' ' -f1 | sed 's/^/PostgreSQL /')",
       "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo '?')",
       "modified_files": $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l),
       "workers_list": "$WORKERS_LIST", "conns": "$CONNS", "duration": $DURATION,
       "only": "$ONLY",
       "pg_duration": $PG_DURATION, "seed_s": $seed_s,
       "coupons": $(sql -c 'select count(*) from coupons_coupon'),
       "codes": $(sql -c 'select count(*) from coupons_code'), **settings}
open(sys.argv[1], "a").write(json.dumps(row) + "\n")
EOF


# Machine-wide CPU counters: `cpu_mark` before a run, `cpu_busy_since MARK` after it
# prints how busy both cores were on average during the run (the bench's own processes
# included): ~100% means the run was CPU-bound on this machine.
cpu_mark() { head -n1 /proc/stat | awk '{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}'; }
cpu_busy_since() {
  local t0 i0 t1 i1
  read -r t0 i0 <<<"$1"
  read -r t1 i1 <<<"$(cpu_mark)"
  [ $((t1 - t0)) -gt 0 ] && echo $(( 100 * ((t1 - t0) - (i1 - i0)) / (t1 - t0) )) || echo 0
}

# --- 5. HTTP runs -----------------------------------------------------------------------
trap stop_gunicorn EXIT  # scripts/harness.sh
trap 'exit 130' INT TERM


run_wrk() {  # test workers conns [mode: overhead runs]
  local test=$1 workers=$2 conns=$3 mode=${4:-} busy
  local -a target=("http://127.0.0.1:$PORT/bench/bare")
  [ "$test" = validate ] && target=(-s bench/validate.lua "http://127.0.0.1:$PORT")
  [ "$test" = apply ] && target=(-s bench/apply.lua "http://127.0.0.1:$PORT")
  local -a kind=()
  [ -n "$mode" ] && kind=(--kind overhead --mode "$mode")
  local mark output
  busy=$(background_busy)
  mark=$(cpu_mark)
  output=$(timeout $((DURATION + 30)) wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 10s \
    --latency "${target[@]}" 2>&1)
  echo "$output" >>"$LOG"
  $PY bench/wrk_parse.py --out "$RESULTS" --test "$test" --workers "$workers" \
    --conns "$conns" --background-busy "$busy" --cpu-busy "$(cpu_busy_since "$mark")" \
    "${kind[@]}" <<<"$output"
}

apply_race() {  # workers
  local workers=$1 busy
  sql -f bench/reset.sql
  busy=$(background_busy)
  log "apply race: $APPLY_REQUESTS calls on HOT1000 (limit $HOT_LIMIT), $APPLY_CONCURRENCY" \
      "connections, $workers workers (background CPU busy ${busy}%)"
  local mark
  mark=$(cpu_mark)
  timeout $((APPLY_DEADLINE + 60)) $PY bench/apply_race.py --port "$PORT" --key "$KEY" \
    --code HOT1000 --requests "$APPLY_REQUESTS" --concurrency "$APPLY_CONCURRENCY" \
    --run-id "$RUN_ID-w$workers" --deadline "$APPLY_DEADLINE" --workers "$workers" \
    --out "$RESULTS" | sed 's/^/  /'
  local cpu_busy
  cpu_busy=$(cpu_busy_since "$mark")
  local uses reserved ok verdict
  read -r uses reserved <<<"$(sql -F ' ' -c "select c.uses, (select count(*) from
      coupons_redemption r where r.coupon_id = c.id and r.status = 'reserved')
      from coupons_coupon c where c.id = $HOT_ID")"
  ok=$(tail -n 1 "$RESULTS" | $PY -c 'import json,sys; r=json.load(sys.stdin); print(r.get("ok", -1) if r.get("kind") == "apply" else -1)')
  if [ "${ok:--1}" = -1 ] || [ -z "${uses:-}" ]; then
    verdict="NO RESULT"   # the race script itself failed (see the log)
  elif [ "$uses" = "$HOT_LIMIT" ] && [ "$reserved" = "$HOT_LIMIT" ] && [ "$ok" = "$HOT_LIMIT" ]; then
    verdict=EXACT
  elif [ "$uses" = "$reserved" ] && [ "$reserved" = "$ok" ] && [ "$uses" -lt "$HOT_LIMIT" ]; then
    verdict=INCOMPLETE   # consistent, but the calls ran out (deadline, errors) before stock
  else
    verdict=MISMATCH
  fi
  log "apply check: uses=$uses reserved=$reserved http200=$ok -> $verdict"
  printf '{"kind": "apply_check", "workers": %s, "uses": %s, "reserved": %s, "http_200": %s, "verdict": "%s", "cpu_busy_pct": %s, "background_busy_pct": %s}\n' \
    "$workers" "${uses:-null}" "${reserved:-null}" "${ok:-null}" "$verdict" "$cpu_busy" \
    "$busy" >>"$RESULTS"
  [ "$verdict" = MISMATCH ] && MISMATCHES=$((MISMATCHES + 1))
}

# Other processes on the box skew every number; optionally wait for a quiet moment.
wait_quiet() {
  [ "${BENCH_WAIT_QUIET:-0}" -gt 0 ] || return 0
  local quiet_deadline=$((SECONDS + BENCH_WAIT_QUIET)) busy
  while [ "$SECONDS" -lt "$quiet_deadline" ]; do
    busy=$(background_busy)
    [ "$busy" -lt 20 ] && break
    log "machine busy (${busy}% CPU used by other processes), waiting"
    sleep 4
  done
}
wait_quiet

MISMATCHES=0
if part checkout; then
  for workers in $WORKERS_LIST; do
    log "gunicorn: $workers sync workers on 127.0.0.1:$PORT"
    start_gunicorn "$workers"
    # Warm every worker (imports, URL resolver, pool connection, API key and coupon caches).
    timeout 20 wrk -t2 -c8 -d2s -s bench/validate.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1
    timeout 20 wrk -t2 -c8 -d1s "http://127.0.0.1:$PORT/bench/bare" >/dev/null 2>&1
    for conns in $CONNS; do
      run_wrk bare "$workers" "$conns"
      run_wrk validate "$workers" "$conns"
    done
    apply_race "$workers"
    stop_gunicorn
  done
fi

# --- 6. pgbench -------------------------------------------------------------------------
# apply_tx.sql is the apply transaction as the service runs it (lock, checks, update,
# insert, commit: the ceiling for the HTTP race); apply_tx_short.sql is the same work as
# one statement (the ceiling if the lock were taken last; see docs/benchmarks.md).
if part checkout; then
  for script in apply_tx apply_tx_short; do
    for clients in $PG_CLIENTS; do
      sql -f bench/reset.sql
      busy=$(background_busy)
      mark=$(cpu_mark)
      jobs=$(( clients < 2 ? clients : 2 ))
      pg_out=$(timeout $((PG_DURATION + 60)) "$PGBENCH" -n -M simple -f "bench/$script.sql" \
        -c "$clients" -j "$jobs" -T "$PG_DURATION" -D hot="$PG_ID" -D hotcode="$PG_CODE_ID" \
        "$DB" 2>&1)
      echo "$pg_out" >>"$LOG"
      cpu_busy=$(cpu_busy_since "$mark")
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$pg_out" | head -n 1)
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$pg_out" | head -n 1)
      failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$pg_out" | head -n 1)
      read -r uses rows <<<"$(sql -F ' ' -c "select c.uses, (select count(*) from
          coupons_redemption r where r.coupon_id = c.id) from coupons_coupon c where c.id = $PG_ID")"
      [ "$uses" = "$rows" ] && check="consistent (uses = rows = $uses)" \
        || check="MISMATCH (uses $uses, rows $rows)"
      printf '  pgbench %-14s c=%-3s %8s tps  avg %s ms  failed %s  %s  (background CPU busy %s%%)\n' \
        "$script" "$clients" "${tps:-?}" "${lat:-?}" "${failed:-?}" "$check" "$busy"
      printf '{"kind": "pgbench", "script": "%s", "clients": %s, "tps": %s, "latency_ms": %s, "failed": %s, "verdict": "%s", "background_busy_pct": %s, "cpu_busy_pct": %s}\n' \
        "$script" "$clients" "${tps:-null}" "${lat:-null}" "${failed:-null}" "$check" "$busy" \
        "$cpu_busy" >>"$RESULTS"
    done
  done
  sql -f bench/reset.sql
fi

# --- optional in-process profile ----------------------------------------------------------
if part checkout && [ "${BENCH_PROFILE:-0}" = 1 ]; then
  for path in validate apply; do
    $PY bench/profile_path.py "$path" -n 300 --top 25 >"$OUT/profile-$path-$RUN_ID.txt" 2>&1
    log "profile of $path: $OUT/profile-$path-$RUN_ID.txt"
    grep -E "^per request|lock held|of which" "$OUT/profile-$path-$RUN_ID.txt"
  done
  sql -f bench/reset.sql
fi

# --- 7. promotions ---------------------------------------------------------------------
# In-process for each N (bench/promotions.py seeds, tells the process, times), then over
# HTTP at one N with the open-loop client; then the bench promotions are removed, so that
# a later checkout run does not meet them. Exit status 2 from either script: it could not
# set up (die); any other failure is reported and the run goes on to the summary.
if part promotions; then
  promo_profile=()
  [ "${BENCH_PROFILE:-0}" = 1 ] && promo_profile=(--profile "$OUT/profile-promotions-$RUN_ID.txt")
  busy=$(background_busy)
  log "promotions in-process: N = $PROMO_NS, $PROMO_CALLS calls each (background CPU busy ${busy}%)"
  # shellcheck disable=SC2086  # PROMO_NS is a list
  $PY bench/promotions.py "$RESULTS" --ns $PROMO_NS --calls "$PROMO_CALLS" \
    --budget "$PROMO_BUDGET" --background-busy "$busy" "${promo_profile[@]}" 2>>"$LOG"
  rc=$?
  [ "$rc" = 2 ] && die "promotions: cannot set up (see $LOG)"
  [ "$rc" = 0 ] || log "promotions in-process: NO RESULT (exit $rc, see $LOG)"
  [ ${#promo_profile[@]} -gt 0 ] && log "profile of promotions: ${promo_profile[1]}"

  promo_workers=${WORKERS_LIST%% *}
  $PY bench/promotions.py "$RESULTS" --seed-only "$PROMO_HTTP_N" 2>>"$LOG" \
    || die "promotions: seeding $PROMO_HTTP_N failed (see $LOG)"
  wait_quiet  # the in-process part took a minute: wait again if asked to
  log "promotions over HTTP: $PROMO_HTTP_N promotions, $promo_workers sync workers," \
      "$PROMO_RATE requests/s for ${PROMO_DURATION}s, then ramp: ${PROMO_RAMP:-none}"
  start_gunicorn "$promo_workers"
  busy=$(background_busy)
  timeout $((PROMO_DURATION + 120)) $PY bench/promotions_http.py --port "$PORT" --key "$KEY" \
    --rate "$PROMO_RATE" --duration "$PROMO_DURATION" --ramp "$PROMO_RAMP" \
    --n "$PROMO_HTTP_N" --workers "$promo_workers" --background-busy "$busy" \
    --server-pid "$GUNICORN_PID" --out "$RESULTS" 2>>"$LOG"
  rc=$?
  stop_gunicorn
  [ "$rc" = 2 ] && die "promotions over HTTP: cannot set up (see $LOG)"
  [ "$rc" = 0 ] || log "promotions over HTTP: NO RESULT (exit $rc, see $LOG)"
  $PY bench/promotions.py "$RESULTS" --seed-only 0 2>>"$LOG" \
    || die "promotions: removing the bench promotions failed (see $LOG)"
fi

# --- 8. bulk codes (issue 5): 1,000,000 codes through the real Celery task, next to a raw
# COPY of 1,000,000 random strings into a bare table with a unique index ------------------
if part codegen; then
  log "bulk codes: ${BENCH_CODEGEN_COUNT:-1000000} through the real task vs raw COPY"
  $PY bench/codegen.py "$RESULTS" 2>>"$LOG" || log "bulk codes: NO RESULT (see $LOG)"
fi

# --- 11. abuse protection + analytics overhead (issue 6) --------------------------------
# The same server and load with both features off and on.
if part overhead; then
  ov_workers=${BENCH_OVERHEAD_WORKERS:-4}
  ov_conns=${BENCH_OVERHEAD_CONNS:-16}
  wait_quiet
  # off, on, on, off (repeated BENCH_OVERHEAD_ROUNDS times, default 2): a drift of the
  # machine over the runs cancels out of the means; one run is too noisy on this VM.
  run=0
  modes=""
  for _ in $(seq 1 "${BENCH_OVERHEAD_ROUNDS:-2}"); do modes="$modes off on on off"; done
  for mode in $modes; do
    run=$((run + 1))
    flag=$([ "$mode" = on ] && echo true || echo false)
    log "overhead run $run: analytics + rate limits $mode ($ov_workers workers)"
    sql -f bench/reset.sql
    sql -c "truncate analytics_couponevent" >/dev/null
    redis-cli -n 3 flushdb >/dev/null  # block markers, leak sets, cached definitions
    ANALYTICS_ENABLED=$flag ABUSE_RATE_LIMITS_ENABLED=$flag start_gunicorn "$ov_workers"
    BENCH_CONTEXT=1 timeout 20 wrk -t2 -c8 -d2s -s bench/validate.lua \
      "http://127.0.0.1:$PORT" >/dev/null 2>&1
    BENCH_CONTEXT=1 run_wrk validate "$ov_workers" "$ov_conns" "$mode"
    run_wrk apply "$ov_workers" "$ov_conns" "$mode"
    stop_gunicorn
  done
  sql -f bench/reset.sql
  sql -c "delete from analytics_couponevent" >/dev/null
fi

# --- 9. flash-sale claims (issue 5): 10,000 claim requests from 2,000 retrying customers
# for 1,000 units over HTTP, then an exact count in PostgreSQL (bench/claims.sh) ---------
if part claims; then
  log "claims: 10,000 requests from 2,000 customers for 1,000 units"
  BENCH_RESULTS="$RESULTS" BENCH_PORT=$((PORT + 1)) bash bench/claims.sh 2>>"$LOG" \
    || log "claims: NOT EXACT or failed (see $LOG)"
fi

# --- 12. billing (issue 13): due renewals through the real beat job on 2 Celery workers
# vs a plain SQL insert of the same invoice rows, then subscribe over HTTP
# (bench/billing.sh; its own port, broker db 10, API key bench-billing) ------------------
if part billing; then
  wait_quiet
  log "billing: ${BENCH_BILLING_SUBS:-100000} renewals through billing.run_due, then subscribe over HTTP"
  BENCH_PORT=$((PORT + 2)) bash bench/billing.sh "$RESULTS" 2>>"$LOG" \
    || log "billing: NOT EXACT or failed (see $LOG)"
fi

# --- 10. summary ------------------------------------------------------------------------
echo
$PY bench/summary.py "$RESULTS" --latest "$OUT/latest.txt"
cp "$OUT/latest.txt" "$OUT/summary-$RUN_ID.txt"
log "results: $OUT/latest.txt (raw: $RESULTS, log: $LOG)"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$MISMATCHES" -gt 0 ]; then
  exit 1
fi
exit 0
