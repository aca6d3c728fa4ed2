"""gunicorn settings (docs/decisions.md "Web workers"): sync workers, one per core plus
one, each with a small psycopg pool; override with the GUNICORN_* variables."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 100_000
max_requests_jitter = 5_000
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
