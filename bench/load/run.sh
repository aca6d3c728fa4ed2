#!/usr/bin/env bash
# make load: the storefront's checkout mix over HTTP for 60 s, then an exact audit of
# PostgreSQL against what the client saw.
#
# Numbers only, like make bench: a slow run is reported, never failed. The script fails
# only when it cannot set up (database, server start, locust missing). LOAD_STRICT=1 also
# makes it exit non-zero when the database audit is not exact.
#
#   1. database growth_load (created if missing, migrated), Redis db 12 (cache, flushed)
#      and db 13 (broker; nothing is queued during the run)
#   2. bench/load/seed.sql (named coupons LOAD25, LOAD10, LIMIT500, ONCE1 + history) and
#      bench/load/reset.sql (back to "just seeded")
#   3. a storefront API key (manage.py create_api_key load --scopes storefront, last line)
#   4. gunicorn config.wsgi --config config/gunicorn.py on 127.0.0.1:$LOAD_PORT with the
#      recommended settings (config/gunicorn.py defaults: 2 sync workers per core, the
#      DB pool per worker from config/settings/base.py), warmed with a few validates
#   5. locust headless (bench/load/locustfile.py): $LOAD_USERS shoppers, no think time, for
#      $LOAD_DURATION s; 80% validate, 15% apply + confirm, 5% apply + release
#   6. CPU accounting (whole machine, gunicorn workers, locust itself), /metrics scraped
#   7. bench/load/check.py: locust's CSV stats per endpoint, business answers vs errors, and
#      the database audit -> stdout and bench/load/out/latest.txt
#
# Knobs (environment): LOAD_PORT (8090), LOAD_USERS (8), LOAD_DURATION (60 s),
# LOAD_WORKERS (unset: config/gunicorn.py's default; else GUNICORN_WORKERS),
# LOAD_WAIT_QUIET=SECONDS (first wait up to that long for other processes to go idle),
# LOAD_STRICT=1, DB_POOL_MAX / DB_POOL_MIN (the product's pool settings, passed through).
set -uo pipefail

cd "$(dirname "$0")/../.."
PY=.venv/bin/python
LOCUST=.venv/bin/locust
OUT=bench/load/out
mkdir -p "$OUT"
RUN_ID=$(date +%Y%m%d-%H%M%S)
LOG="$OUT/run-$RUN_ID.log"
: >"$LOG"
# Keep the files of the last 10 runs (bench/load/out/ should be git-ignored); every file of a
# run carries its run id.
find "$OUT" -maxdepth 1 -name 'run-*.log' -printf '%f\n' | sed 's/^run-\(.*\)\.log$/\1/' \
  | sort -r | tail -n +11 | while read -r old; do rm -f "$OUT"/*"-$old"[._-]*; done

PORT=${LOAD_PORT:-8090}
USERS=${LOAD_USERS:-8}
DURATION=${LOAD_DURATION:-60}

DB=growth_load
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL=redis://127.0.0.1:6379/12
export CELERY_BROKER_URL=redis://127.0.0.1:6379/13
export DJANGO_SETTINGS_MODULE=config.settings.bench
export GUNICORN_BIND="127.0.0.1:$PORT"
unset GUNICORN_ACCESSLOG
# The recommended worker count is config/gunicorn.py's default; a GUNICORN_WORKERS left
# in the shell would silently test something else.
if [ -n "${LOAD_WORKERS:-}" ]; then export GUNICORN_WORKERS=$LOAD_WORKERS; else unset GUNICORN_WORKERS; fi

log() { printf '[load %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# --- 1. tools, database, cache -------------------------------------------------------------
[ -x "$LOCUST" ] || die "locust is not installed in .venv (pip install -e '.[dev]')"
# shellcheck source=../../scripts/harness.sh
. scripts/harness.sh
prepare_database 12 13

# --- 2. seed and reset ---------------------------------------------------------------------
log "seeding (bench/load/seed.sql) and resetting (bench/load/reset.sql)"
sql -f bench/load/seed.sql >>"$LOG" 2>&1 || die "seed failed (see $LOG)"
sql -f bench/load/reset.sql >>"$LOG" 2>&1 || die "reset failed (see $LOG)"

# --- 3. API key ----------------------------------------------------------------------------
sql -c "delete from core_apikey where name = 'load'"
KEY=$($PY manage.py create_api_key load --scopes storefront 2>>"$LOG" | tail -n 1)
[ -n "$KEY" ] || die "create_api_key printed nothing"

# --- CPU accounting helpers ------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
# Machine-wide counters: "total idle" jiffies.
cpu_mark() { head -n1 /proc/stat | awk '{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}'; }
busy_pct() {  # MARK_BEFORE MARK_AFTER -> busy % of all cores between them
  local t0 i0 t1 i1
  read -r t0 i0 <<<"$1"; read -r t1 i1 <<<"$2"
  [ $((t1 - t0)) -gt 0 ] && echo $(( 100 * ((t1 - t0) - (i1 - i0)) / (t1 - t0) )) || echo 0
}
# CPU ticks (user + system) used so far by the gunicorn master and its workers.
gunicorn_ticks() {
  local total=0 pid fields
  for pid in "$GUNICORN_PID" $(pgrep -P "$GUNICORN_PID"); do
    [ -r "/proc/$pid/stat" ] || continue
    # Fields 14 and 15 (utime, stime), counted after the ")" closing the command name.
    fields=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    total=$(( total + fields ))
  done
  echo "$total"
}

# CPU ticks used so far by the given processes (PostgreSQL backends of the run).
pids_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    fields=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    total=$(( total + fields ))
  done
  echo "$total"
}
pg_backends() {  # the PostgreSQL backends serving growth_load (the workers' pooled connections)
  sql -c "select pid from pg_stat_activity where datname = '$DB' and pid <> pg_backend_pid()
           and backend_type = 'client backend'"
}

# --- 4. server ----------------------------------------------------------------------------
trap stop_gunicorn EXIT  # scripts/harness.sh
trap 'exit 130' INT TERM

if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
  die "port $PORT is already in use (set LOAD_PORT)"
fi
.venv/bin/gunicorn config.wsgi --config config/gunicorn.py >>"$LOG" 2>&1 &
GUNICORN_PID=$!
up=0
for _ in $(seq 1 100); do
  curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health/live" && { up=1; break; }
  kill -0 "$GUNICORN_PID" 2>/dev/null || break
  sleep 0.2
done
[ "$up" = 1 ] || die "gunicorn did not answer /health/live (see $LOG)"
WORKERS=$(pgrep -P "$GUNICORN_PID" | wc -l)
READY_BEFORE=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/health/ready")
log "gunicorn: $WORKERS sync workers on 127.0.0.1:$PORT; /health/ready: $READY_BEFORE"

# Warm every worker (imports, pool connection, API key and coupon caches) with validates
# only, so the database still starts from "just seeded".
$PY - "$PORT" "$KEY" >>"$LOG" 2>&1 <<'EOF' || die "warm-up failed (see $LOG)"
import http.client, sys, threading
port, key = int(sys.argv[1]), sys.argv[2]
body = ('{"coupon_code":"%s","customer":{"id":"warm-1"},"cart":{"currency":"USD",'
        '"items":[{"sku":"SKU-1","category":"home","unit_price":"20.00","quantity":2}]}}')
codes = ["LOAD25", "LOAD10", "LIMIT500", "ONCE1"]
bad = []
def run(i):
    for n in range(40):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/v1/coupons/validate", body=body % codes[(i + n) % 4],
                     headers={"Authorization": f"Api-Key {key}",
                              "Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200 or b'"valid":true' not in response.read():
            bad.append(response.status)
        conn.close()
threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("warm-up: 320 validates,", len(bad), "not 200 valid:true")
sys.exit(1 if bad else 0)
EOF

# --- 5. locust ----------------------------------------------------------------------------
if [ "${LOAD_WAIT_QUIET:-0}" -gt 0 ]; then
  quiet_deadline=$((SECONDS + LOAD_WAIT_QUIET))
  while [ "$SECONDS" -lt "$quiet_deadline" ]; do
    busy=$(background_busy)
    [ "$busy" -lt 20 ] && break
    log "machine busy (${busy}% CPU used by other processes), waiting"
    sleep 4
  done
fi
BG_BUSY=$(background_busy)
log "locust: $USERS users, no think time, ${DURATION}s (background CPU busy ${BG_BUSY}%)"
mark0=$(cpu_mark)
g0=$(gunicorn_ticks)
PG_PIDS=$(pg_backends | tr '\n' ' ')
p0=$(pids_ticks $PG_PIDS)
t0=$(date +%s%N)
LOAD_API_KEY=$KEY LOAD_RUN_ID=$RUN_ID LOAD_OUT=$OUT \
  timeout $((DURATION + 90)) "$LOCUST" -f bench/load/locustfile.py --headless \
    -u "$USERS" -r "$USERS" -t "${DURATION}s" --stop-timeout 10 \
    --host "http://127.0.0.1:$PORT" --csv "$OUT/locust-$RUN_ID" \
    --only-summary --loglevel WARNING --exit-code-on-error 0 >>"$LOG" 2>&1
locust_rc=$?
t1=$(date +%s%N)
mark1=$(cpu_mark)
g1=$(gunicorn_ticks)
p1=$(pids_ticks $PG_PIDS)
PG_PIDS_AFTER=$(pg_backends | tr '\n' ' ')
[ "$PG_PIDS" = "$PG_PIDS_AFTER" ] || log "PostgreSQL backends changed during the run ($PG_PIDS -> $PG_PIDS_AFTER); their CPU is undercounted"
[ "$locust_rc" = 0 ] || log "locust exited with $locust_rc (see $LOG)"
[ -s "$OUT/locust-${RUN_ID}_stats.csv" ] || die "locust wrote no stats (see $LOG)"

# --- 6. after the run -----------------------------------------------------------------------
curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-$RUN_ID.txt"
READY_AFTER=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/health/ready")
stop_gunicorn
settings_json=$($PY - <<'EOF' 2>>"$LOG"
import json, django
django.setup()
from django.conf import settings as s
pool = s.DATABASES["default"].get("OPTIONS", {}).get("pool") or {}
print(json.dumps({"db_pool_min": pool.get("min_size"), "db_pool_max": pool.get("max_size"),
                  "reservation_ttl": s.COUPON_RESERVATION_TTL}))
EOF
)
[ -n "$settings_json" ] || settings_json='{}'
$PY - "$OUT/env-$RUN_ID.json" "$settings_json" "$READY_BEFORE" "$READY_AFTER" <<EOF
import json, os, sys
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
wall = ($t1 - $t0) / 1e9
env = {"run_id": "$RUN_ID", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
       "cpus": $NCPU, "cpu_model": model,
       "postgres": "$(sql -c 'show server_version' | cut -d' ' -f1)",
       "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo '?')",
       "modified_files": $(git status --porcelain --untracked-files=no 2>/dev/null | wc -l),
       "port": $PORT, "users": $USERS, "duration_s": $DURATION, "workers": $WORKERS,
       "locust_rc": $locust_rc, "wall_s": round(wall, 2),
       "background_busy_pct": $BG_BUSY, "machine_busy_pct": $(busy_pct "$mark0" "$mark1"),
       "gunicorn_cpu_s": round(($g1 - $g0) / $CLK_TCK, 2),
       "postgres_cpu_s": round(($p1 - $p0) / $CLK_TCK, 2),
       "postgres_backends": len("$PG_PIDS".split()),
       "ready_before": sys.argv[3], "ready_after": sys.argv[4],
       **json.loads(sys.argv[2] or "{}")}
open(sys.argv[1], "w").write(json.dumps(env, indent=1))
EOF

# --- 7. report and audit ---------------------------------------------------------------------
echo
$PY bench/load/check.py --run-id "$RUN_ID" --out "$OUT" --latest "$OUT/latest.txt"
check_rc=$?
cp "$OUT/latest.txt" "$OUT/summary-$RUN_ID.txt" 2>/dev/null
log "results: $OUT/latest.txt (log: $LOG)"
if [ "$check_rc" = 2 ]; then
  die "the audit could not run (see above)"
fi
if [ "${LOAD_STRICT:-0}" = 1 ] && [ "$check_rc" != 0 ]; then
  exit 1
fi
exit 0
