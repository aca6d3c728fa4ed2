import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("growth")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.worker_process_init.connect
def use_worker_db_sessions(**_) -> None:
    """Give a Celery worker's database sessions the worker's settings: a statement and an
    idle-in-transaction timeout on top of what every process has (dead-client checks,
    keepalives). worker_init runs in the main process before the pool forks, so every
    pool process inherits it; worker_process_init covers pools that start fresh. Web,
    beat and manage.py keep DB_SESSION_OPTIONS (config/settings/base.py)."""
    from django.conf import settings
    from django.db import connections

    options = settings.DB_WORKER_SESSION_OPTIONS
    for alias in connections:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        if connection.settings_dict["OPTIONS"].get("options") == options:
            continue
        connection.settings_dict["OPTIONS"]["options"] = options
        settings.DATABASES[alias].setdefault("OPTIONS", {})["options"] = options
        # Connections (and a pool) opened before this point keep their old settings.
        connection.close()
        if alias in getattr(type(connection), "_connection_pools", {}):
            connection.close_pool()  # type: ignore[attr-defined] # Django 5.1+, not in the stubs
