"""Race helpers: run many calls from worker threads that each hold their own PostgreSQL
connection, released together so the calls really overlap (STYLE.md, Tests).

Django gives every thread its own connection; the workers open theirs before the start
barrier and close them in a `finally`, so a test never leaks a connection (the server
allows 100 and other test runs share it). Use these only in
`django_db(transaction=True)` tests: the workers cannot see an uncommitted test
transaction.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections
from rest_framework.test import APIClient

from core.models import ApiKey

# The database allows 100 connections and other runs share it: never more than this, and
# under `pytest -n 2` (make test) two races may overlap, so each takes at most 30.
MAX_WORKERS = 40 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) < 2 else 30


@dataclass(frozen=True)
class Outcome:
    """What one call returned, or the exception it raised (with its traceback)."""

    value: Any = None
    error: BaseException | None = None
    trace: str = ""


def race(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int = MAX_WORKERS,
    timeout: float = 120.0,
) -> list[Outcome]:
    """Call `fn(item)` for every item from `workers` threads started at once.

    The items are handed out in order from one queue, so their order decides how the
    calls interleave. Returns one Outcome per item, in the items' order.
    """
    todo: queue.SimpleQueue = queue.SimpleQueue()
    count = 0
    for index, item in enumerate(items):
        todo.put((index, item))
        count += 1
    results: list[Outcome | None] = [None] * count
    workers = max(1, min(workers, MAX_WORKERS, count))
    start = threading.Barrier(workers, timeout=timeout)

    def work() -> None:
        try:
            try:
                connection.ensure_connection()
            except BaseException:
                start.abort()
                raise
            start.wait()
            while True:
                try:
                    index, item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[index] = Outcome(value=fn(item))
                except Exception as exc:  # recorded; the test decides what is expected
                    results[index] = Outcome(error=exc, trace=traceback.format_exc())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="race") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        for future in futures:
            future.result(timeout=timeout)
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"{len(missing)} calls never ran"
    return results  # type: ignore[return-value]


def race_calls(calls: Iterable[Callable[[], Any]], **kw) -> list[Outcome]:
    """race() over zero-argument callables (for mixed workloads)."""
    return race(lambda call: call(), calls, **kw)


def unexpected(outcomes: list[Outcome], allowed: tuple[type[BaseException], ...] = ()) -> str:
    """A readable report of the errors that are not of an allowed type ('' if none)."""
    bad = [o for o in outcomes if o.error is not None and not isinstance(o.error, allowed)]
    if not bad:
        return ""
    kinds = Counter(f"{type(o.error).__name__}: {o.error}" for o in bad)
    return f"{len(bad)} unexpected errors {dict(kinds)}; first:\n{bad[0].trace}"


def api_key(scopes: list[str]) -> str:
    """Create a committed API key; its raw value is used to build one client per call."""
    _, key = ApiKey.objects.create_key(name="race", scopes=scopes)
    return key


def client_for(key: str) -> APIClient:
    """A fresh client (test clients keep cookies, so threads never share one)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client
