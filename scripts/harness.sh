# Shared by bench/run.sh, bench/claims.sh, bench/codegen.sh and load/run.sh (sourced):
# check the services, prepare a dedicated, migrated database, start and stop the server
# under test. Expects PY, DB, LOG, PORT and the functions log and die.

# prepare_database REDIS_DB...: services answer, $DB exists and is migrated, the given
# Redis databases (the harness's own cache and broker) are flushed.
prepare_database() {
  [ -x "$PY" ] || die "no virtualenv at .venv (run make venv)"
  pg_isready -q || die "PostgreSQL is not answering on $PGHOST:$PGPORT"
  redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || die "Redis is not answering on 127.0.0.1:6379"
  if [ "$(psql -X -At -d postgres -c "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
    log "creating database $DB"
    createdb "$DB" || die "createdb $DB failed"
  fi
  log "migrating $DB"
  $PY manage.py migrate --noinput >>"$LOG" 2>&1 || die "migrate failed (see $LOG)"
  local n
  for n in "$@"; do
    redis-cli -h 127.0.0.1 -n "$n" flushdb >/dev/null
  done
}

# The server under test: start_gunicorn WORKERS starts it in the background on $PORT
# (GUNICORN_BIND) and waits for /health/live, setting GUNICORN_PID; stop_gunicorn (trap
# it on EXIT) stops it politely, then firmly.
GUNICORN_PID=""
start_gunicorn() {
  local workers=$1
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
    die "port $PORT is already in use (set BENCH_PORT)"
  fi
  GUNICORN_WORKERS=$workers .venv/bin/gunicorn config.wsgi --config config/gunicorn.py \
    >>"$LOG" 2>&1 &
  GUNICORN_PID=$!
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health/live" && return 0
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    sleep 0.2
  done
  die "gunicorn did not answer /health/live (see $LOG)"
}

stop_gunicorn() {
  if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
    kill -TERM "$GUNICORN_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$GUNICORN_PID" 2>/dev/null && kill -KILL "$GUNICORN_PID" 2>/dev/null
    wait "$GUNICORN_PID" 2>/dev/null
  fi
  GUNICORN_PID=""
}

# CPU busy % of the whole machine over one second, taken while nothing of ours runs: how
# much of the two cores other processes were using just before a measurement.
background_busy() {
  local a b
  read -r -a a < <(head -n1 /proc/stat)
  sleep 1
  read -r -a b < <(head -n1 /proc/stat)
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) ))
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  [ "$total" -gt 0 ] && echo $(( 100 * (total - idle) / total )) || echo 0
}
