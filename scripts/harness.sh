# Shared by bench/run.sh and load/run.sh (sourced): check the services and prepare a
# dedicated, migrated database. Expects PY, DB, LOG and the functions log and die.

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

# The server under test: start it in the background, set GUNICORN_PID; stop_gunicorn
# (trap it on EXIT) stops it politely, then firmly.
GUNICORN_PID=""
stop_gunicorn() {
  if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
    kill -TERM "$GUNICORN_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$GUNICORN_PID" 2>/dev/null && kill -KILL "$GUNICORN_PID" 2>/dev/null
    wait "$GUNICORN_PID" 2>/dev/null
  fi
  GUNICORN_PID=""
}
