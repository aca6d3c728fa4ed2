"""gunicorn settings (docs/decisions.md "Web workers"): sync workers, two per core,
each with a small psycopg pool; override with the GUNICORN_* variables."""

import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 100_000
max_requests_jitter = 5_000
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"

# Prometheus counters live per worker process; a shared directory lets /metrics sum them.
_created_dir = None
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _created_dir = tempfile.mkdtemp(prefix="growth-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_dir


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_dir:  # only the directory made above; one set by ops is theirs to keep
        shutil.rmtree(_created_dir, ignore_errors=True)
