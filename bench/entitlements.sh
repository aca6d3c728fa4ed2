#!/usr/bin/env bash
# Entitlements benchmark (issue 14), standalone: `bash bench/entitlements.sh` (and the
# last step of `make bench`, after bench/run.sh). Numbers only: timing never fails it.
# bench/entitlements.py has the details.
#
#   1. database growth_bench_ent (created and migrated if needed), Redis db 14 (cache)
#      and db 15 (broker; nothing consumes it), both flushed first: nothing else uses them
#   2. seed (bench/entitlements.py seed): 4 features, the default plan bench-ent-free,
#      BENCH_ENT_CUSTOMERS customers (5,000) + a hot one; the HTTP customers' answers
#      computed into Redis; a storefront API key (bench-ent)
#   3. in-process: services.check on a warm cache, BENCH_ENT_CALLS (20,000) calls over
#      all customers at random and as many on the hot one, p50/p99, next to the one Redis
#      round trip (MGET) alone, then the same with this process and redis-server on one
#      CPU (BENCH_ENT_ONE_CPU=1, the default: a cross-CPU wake-up on an idle VM costs more
#      than the check; docs/benchmarks.md), and the whole view through django.test.Client
#      next to /bench/bare; gunicorn is not running yet
#   4. over HTTP, gunicorn (config/gunicorn.py, BENCH_ENT_WORKERS = 4 sync workers), wrk
#      -t2 --latency for BENCH_DURATION (10 s), at each of BENCH_ENT_CONNS ("2 4 8 32"):
#      GET /bench/bare (bench/urls.py, the ceiling), then POST
#      /api/v1/entitlements/{id}/check (bench_ent_projects, one of BENCH_ENT_HTTP_CUSTOMERS
#      (1,000) customers at random per request, API key), each check run right after every
#      HTTP customer was read once in-process (expired version keys repaired) and a 2 s
#      warm-up; counts 200s whose body is not `"allowed":true`, the PostgreSQL
#      transactions during the run (0 when every answer came from the cache) and the CPU
#      gunicorn used per request (what the server costs, whatever else the box runs)
#   5. reserves on ONE account row over HTTP: POST /api/v1/entitlements/{id}/reserve for
#      customer bench-ent-reserve-http, feature bench_ent_seats (unlimited), a distinct
#      resource_id per request, wrk at BENCH_ENT_RESERVE_CONNS (8); then used = rows and
#      rows >= HTTP 200s in PostgreSQL; then 300 reserves in-process, one after another
#      (bench/entitlements.py reserve-profile): statements and the row lock's hold time
#   6. pgbench on the same database, BENCH_PG_CLIENTS ("1 4 8") for BENCH_PG_DURATION
#      (10 s), on customer bench-ent-reserve-pg: reserve_core (the usage row lock, the
#      conditional update, the reservation insert, the version bump, commit) and
#      reserve_full (every statement of one reserve), both generated from a captured
#      services.reserve (bench/entitlements.py statements); then used = rows
#   7. the table (bench/entitlements.py summary)
#
# Output: stdout, JSON lines in bench/out/entitlements-<run>.jsonl (or $1: bench/run.sh
# may pass its RESULTS file), the log bench/out/entitlements-<run>.log. Exit status: 0;
# 2 on setup failure; 1 when a reserve count is not consistent and BENCH_STRICT=1 (as
# bench/run.sh; without it the table says MISMATCH).
# Knobs: BENCH_PORT (8091), BENCH_ENT_WORKERS (4), BENCH_ENT_CONNS ("2 4 8 32"),
# BENCH_ENT_RESERVE_CONNS ("8"), BENCH_DURATION (10), BENCH_ENT_CUSTOMERS (5000),
# BENCH_ENT_HTTP_CUSTOMERS (1000), BENCH_ENT_CALLS (20000), BENCH_PG_CLIENTS ("1 4 8"),
# BENCH_PG_DURATION (10), BENCH_ENT_ONE_CPU=0 (no one-CPU in-process run),
# BENCH_ENT_SKIP_HTTP=1 / BENCH_ENT_SKIP_INPROC=1 /
# BENCH_ENT_SKIP_PGBENCH=1 (parts), BENCH_PROFILE=1 (cProfile of the in-process check),
# BENCH_WAIT_QUIET=SECONDS (wait up to that long for the box to go quiet before each run).
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
RESULTS=${1:-$OUT/entitlements-$RUN_ID.jsonl}
LOG="$OUT/entitlements-$RUN_ID.log"

PORT=${BENCH_PORT:-8091}
WORKERS=${BENCH_ENT_WORKERS:-4}
CONNS=${BENCH_ENT_CONNS:-"2 4 8 32"}
RESERVE_CONNS=${BENCH_ENT_RESERVE_CONNS:-"8"}
DURATION=${BENCH_DURATION:-10}
CUSTOMERS=${BENCH_ENT_CUSTOMERS:-5000}
HTTP_CUSTOMERS=${BENCH_ENT_HTTP_CUSTOMERS:-1000}
CALLS=${BENCH_ENT_CALLS:-20000}
PG_CLIENTS=${BENCH_PG_CLIENTS:-"1 4 8"}
PG_DURATION=${BENCH_PG_DURATION:-10}

DB=growth_bench_ent
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/14
export CELERY_BROKER_URL=redis://127.0.0.1:6379/15
export DJANGO_SETTINGS_MODULE=config.settings.bench
export GUNICORN_BIND="127.0.0.1:$PORT"
unset GUNICORN_ACCESSLOG

log() { printf '[entitlements %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 2; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y -q wrk >>"$LOG" 2>&1 \
    || { apt-get update -q >>"$LOG" 2>&1 && apt-get install -y -q wrk >>"$LOG" 2>&1; } \
    || die "could not install wrk (see $LOG)"
fi
PGBENCH=$(command -v pgbench || echo /usr/bin/pgbench)
[ -x "$PGBENCH" ] || die "pgbench not found"

# shellcheck source=../scripts/harness.sh
. scripts/harness.sh
prepare_database 14 15

TMP=$(mktemp -d)
trap 'stop_gunicorn; rm -rf "$TMP"' EXIT  # stop_gunicorn: scripts/harness.sh
trap 'exit 130' INT TERM

# Machine-wide CPU counters around a run (as bench/run.sh): how busy both cores were.
cpu_mark() { head -n1 /proc/stat | awk '{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}'; }
cpu_busy_since() {
  local t0 i0 t1 i1
  read -r t0 i0 <<<"$1"
  read -r t1 i1 <<<"$(cpu_mark)"
  [ $((t1 - t0)) -gt 0 ] && echo $(( 100 * ((t1 - t0) - (i1 - i0)) / (t1 - t0) )) || echo 0
}
# CPU ticks used so far by gunicorn and its workers (utime + stime, /proc/PID/stat): per
# request, this is what the server costs whatever else the box runs.
server_ticks() {
  local total=0 p
  local -a f
  for p in "$GUNICORN_PID" $(ps -o pid= --ppid "$GUNICORN_PID"); do
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    total=$(( total + ${f[11]:-0} + ${f[12]:-0} ))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)
# Transactions committed in this database so far (each autocommitted statement is one).
pg_xacts() { sql -c "select xact_commit from pg_stat_database where datname = current_database()"; }

# Other processes on the box skew every number; BENCH_WAIT_QUIET=SECONDS waits up to that
# long for them to go under 20% before each part (as bench/run.sh).
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

# --- 2. seed, API key ---------------------------------------------------------------------
busy=$(background_busy)
log "seed: $CUSTOMERS customers, $HTTP_CUSTOMERS answers into Redis (background CPU busy ${busy}%)"
$PY bench/entitlements.py seed "$RESULTS" --customers "$CUSTOMERS" \
  --http-customers "$HTTP_CUSTOMERS" 2>>"$LOG" || die "seed failed (see $LOG)"
sql -c "delete from core_apikey where name = 'bench-ent'"
KEY=$($PY manage.py create_api_key bench-ent --scopes storefront 2>>"$LOG" | tail -n 1)
[ -n "$KEY" ] || die "create_api_key printed nothing (see $LOG)"
# The seed's aftermath (autovacuum of the new rows, the checkpoint of their WAL) would
# otherwise land in the first timed run: done now, before anything is measured.
sql -c "VACUUM ANALYZE" && sql -c "CHECKPOINT"
export BENCH_API_KEY=$KEY

# --- 3. in-process check ------------------------------------------------------------------
if [ "${BENCH_ENT_SKIP_INPROC:-0}" != 1 ]; then
  wait_quiet
  busy=$(background_busy)
  log "in-process services.check: $CALLS calls over $CUSTOMERS customers, $CALLS on the" \
      "hot one (background CPU busy ${busy}%)"
  extra=()
  [ "${BENCH_PROFILE:-0}" = 1 ] && extra+=(--profile "$OUT/entitlements-profile-$RUN_ID.txt")
  [ "${BENCH_ENT_ONE_CPU:-1}" = 1 ] && extra+=(--one-cpu)
  $PY bench/entitlements.py inproc "$RESULTS" --customers "$CUSTOMERS" --calls "$CALLS" \
    --background-busy "$busy" --wait-quiet "${BENCH_WAIT_QUIET:-0}" "${extra[@]}" 2>>"$LOG" \
    || log "in-process: NO RESULT (see $LOG)"
fi

# --- 4./5. HTTP -----------------------------------------------------------------------------
cat >"$TMP/check.lua" <<'EOF'
-- POST /api/v1/entitlements/{id}/check, one of BENCH_ENT_HTTP_CUSTOMERS customers at random.
local key = os.getenv("BENCH_API_KEY") or ""
local customers = tonumber(os.getenv("BENCH_ENT_HTTP_CUSTOMERS") or "1000")
local body = '{"feature":"bench_ent_projects","quantity":1}'
wrk.method = "POST"
wrk.headers["Authorization"] = "Api-Key " .. key
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function init(args) math.randomseed(os.time() * 1000 + id); not_valid = 0 end
function request()
  local path = "/api/v1/entitlements/bench-ent-c-" .. math.random(0, customers - 1) .. "/check"
  return wrk.format(nil, path, nil, body)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allowed":true', 1, true) then
    not_valid = not_valid + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + (thread:get("not_valid") or 0) end
  io.write(string.format("bodies_not_valid: %d\n", total))
end
EOF
cat >"$TMP/reserve.lua" <<'EOF'
-- POST /api/v1/entitlements/bench-ent-reserve-http/reserve, a new resource_id each time.
local key = os.getenv("BENCH_API_KEY") or ""
local run = os.getenv("BENCH_RUN_ID") or "run"
wrk.method = "POST"
wrk.path = "/api/v1/entitlements/bench-ent-reserve-http/reserve"
wrk.headers["Authorization"] = "Api-Key " .. key
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function init(args) n = 0; not_valid = 0 end
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"feature":"bench_ent_seats","quantity":1,"resource_id":"'
    .. run .. '-' .. id .. '-' .. n .. '"}')
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allowed":true', 1, true) then
    not_valid = not_valid + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + (thread:get("not_valid") or 0) end
  io.write(string.format("bodies_not_valid: %d\n", total))
end
EOF
export BENCH_ENT_HTTP_CUSTOMERS=$HTTP_CUSTOMERS BENCH_RUN_ID=$RUN_ID

run_wrk() {  # test conns -> one ent_wrk row; sets WRK_OK (2xx responses)
  local test=$1 conns=$2 busy mark output x0 x1
  local -a target=("http://127.0.0.1:$PORT/bench/bare")
  [ "$test" = check ] && target=(-s "$TMP/check.lua" "http://127.0.0.1:$PORT")
  [ "$test" = reserve ] && target=(-s "$TMP/reserve.lua" "http://127.0.0.1:$PORT")
  busy=$(background_busy)
  x0=$(pg_xacts)
  mark=$(cpu_mark)
  local s0 s1
  s0=$(server_ticks)
  output=$(timeout $((DURATION + 30)) wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 10s \
    --latency "${target[@]}" 2>&1)
  s1=$(server_ticks)
  local cpu_busy
  cpu_busy=$(cpu_busy_since "$mark")
  echo "$output" >>"$LOG"
  sleep 1.5  # PostgreSQL publishes a backend's counters within a second of it going idle
  x1=$(pg_xacts)
  $PY bench/wrk_parse.py --out "$RESULTS" --kind ent_wrk --test "$test" --workers "$WORKERS" \
    --conns "$conns" --background-busy "$busy" --cpu-busy "$cpu_busy" <<<"$output"
  local requests non2xx
  requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$output" | head -n 1)
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$output" | head -n 1)
  WRK_OK=$(( ${requests:-0} - ${non2xx:-0} ))
  local cpu_ms
  cpu_ms=$(awk -v t=$(( s1 - s0 )) -v hz="$TICKS" -v n="${requests:-0}" \
    'BEGIN { printf "%.3f", (n > 0 ? 1000 * t / hz / n : 0) }')
  printf '{"kind": "ent_run", "test": "%s", "conns": %s, "requests": %s, "pg_xacts": %s, "server_cpu_ms_per_req": %s}\n' \
    "$test" "$conns" "${requests:-0}" "$(( x1 - x0 - 2 ))" "$cpu_ms" >>"$RESULTS"
  log "  $test: gunicorn CPU $cpu_ms ms per request; PostgreSQL transactions during the" \
      "run: $(( x1 - x0 - 2 )) for ${requests:-0} requests"
}

FAILED=0
if [ "${BENCH_ENT_SKIP_HTTP:-0}" != 1 ]; then
  log "gunicorn: $WORKERS sync workers on 127.0.0.1:$PORT"
  start_gunicorn "$WORKERS"
  # Warm every worker: imports, pool connection, API key cache, the LRU from Redis.
  timeout 40 wrk -t2 -c8 -d10s -s "$TMP/check.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1
  timeout 30 wrk -t2 -c8 -d5s "http://127.0.0.1:$PORT/bench/bare" >/dev/null 2>&1
  for conns in $CONNS; do
    wait_quiet
    log "wrk c=$conns: bare, then check"
    run_wrk bare "$conns"
    # Every HTTP customer's version key live and answer in Redis (keys expire
    # ENTITLEMENTS_VERSION_TTL after their last publish), then the workers' LRUs filled.
    $PY bench/entitlements.py warm --http-customers "$HTTP_CUSTOMERS" 2>>"$LOG"
    timeout 20 wrk -t2 -c8 -d2s -s "$TMP/check.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1
    run_wrk check "$conns"
  done
  for conns in $RESERVE_CONNS; do
    $PY bench/entitlements.py reset >/dev/null 2>>"$LOG" || die "reset failed (see $LOG)"
    wait_quiet
    log "wrk c=$conns: reserve on one account row"
    run_wrk reserve "$conns"
    $PY bench/entitlements.py reserve-check "$RESULTS" --customer bench-ent-reserve-http \
      --label "reserve c=$conns" --ok "$WRK_OK" --slack "$conns" 2>>"$LOG" || FAILED=1
  done
  stop_gunicorn
  # Where a reserve's time goes, without HTTP or contention: the row lock's hold time.
  $PY bench/entitlements.py reset >/dev/null 2>>"$LOG" || die "reset failed (see $LOG)"
  wait_quiet
  busy=$(background_busy)
  $PY bench/entitlements.py reserve-profile "$RESULTS" --background-busy "$busy" 2>>"$LOG" \
    || log "reserve in-process: NO RESULT (see $LOG)"
fi

# --- 6. pgbench ---------------------------------------------------------------------------
if [ "${BENCH_ENT_SKIP_PGBENCH:-0}" != 1 ]; then
  $PY bench/entitlements.py reset >/dev/null 2>>"$LOG" || die "reset failed (see $LOG)"
  $PY bench/entitlements.py statements --pgbench-dir "$TMP" 2>>"$LOG" \
    || die "could not capture reserve's SQL (see $LOG)"
  for script in reserve_core reserve_full; do
    for clients in $PG_CLIENTS; do
      $PY bench/entitlements.py reset >/dev/null 2>>"$LOG" || die "reset failed (see $LOG)"
      wait_quiet
      busy=$(background_busy)
      mark=$(cpu_mark)
      jobs=$(( clients < 2 ? clients : 2 ))
      pg_out=$(timeout $((PG_DURATION + 60)) "$PGBENCH" -n -M simple -f "$TMP/$script.sql" \
        -c "$clients" -j "$jobs" -T "$PG_DURATION" -D cust=bench-ent-reserve-pg "$DB" 2>&1)
      echo "$pg_out" >>"$LOG"
      cpu_busy=$(cpu_busy_since "$mark")
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$pg_out" | head -n 1)
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$pg_out" | head -n 1)
      failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$pg_out" | head -n 1)
      done_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$pg_out" | head -n 1)
      check=$($PY bench/entitlements.py reserve-check "$RESULTS" --customer bench-ent-reserve-pg \
        --label "pgbench $script c=$clients" --ok "${done_n:-0}" --slack 0 2>>"$LOG") || FAILED=1
      echo "$check"
      verdict=$(grep -q consistent <<<"$check" && echo consistent || echo MISMATCH)
      printf '{"kind": "ent_pgbench", "script": "%s", "clients": %s, "tps": %s, "latency_ms": %s, "failed": %s, "transactions": %s, "verdict": "%s", "background_busy_pct": %s, "cpu_busy_pct": %s}\n' \
        "$script" "$clients" "${tps:-null}" "${lat:-null}" "${failed:-null}" "${done_n:-null}" \
        "$verdict" "$busy" "$cpu_busy" >>"$RESULTS"
      printf '  pgbench %-13s c=%-2s %8s tps  avg %s ms  failed %s  (background CPU busy %s%%)\n' \
        "$script" "$clients" "${tps:-?}" "${lat:-?}" "${failed:-?}" "$busy"
    done
  done
  $PY bench/entitlements.py reset >/dev/null 2>>"$LOG"
fi

sql -c "delete from core_apikey where name = 'bench-ent'"
$PY bench/entitlements.py summary "$RESULTS"
log "results: $RESULTS (log: $LOG)"
if [ "$FAILED" = 1 ]; then
  log "a reserve count was NOT consistent (see above)"
  [ "${BENCH_STRICT:-0}" = 1 ] && exit 1
fi
exit 0
