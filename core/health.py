"""Liveness and readiness (API.md "Service endpoints").

Ready is `ok` when PostgreSQL, Redis and the broker answer; `degraded` (still 200) when
only Redis or the broker is down, because checkout works from PostgreSQL alone; `503`
when PostgreSQL is down.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure means "down"
        return {
            "ok": False,
            "error": type(exc).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()


def _broker() -> None:
    from kombu import Connection

    # connect_timeout only bounds the TCP connect; the socket timeouts also bound the
    # PING, so a frozen broker cannot hold a worker for gunicorn's whole timeout.
    options = {"socket_timeout": 1, "socket_connect_timeout": 1}
    with Connection(
        settings.CELERY_BROKER_URL, connect_timeout=1, transport_options=options
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=1)


@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request):
    checks = {"postgres": _timed(_postgres), "redis": _timed(_redis), "broker": _timed(_broker)}
    if not checks["postgres"]["ok"]:
        state, code = "down", 503
    elif all(c["ok"] for c in checks.values()):
        state, code = "ok", 200
    else:
        state, code = "degraded", 200
    response = JsonResponse({"status": state, "checks": checks}, status=code)
    if code == 503:
        response["Retry-After"] = "5"
    return response
