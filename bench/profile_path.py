"""Profile one request path in-process (django.test.Client, same settings as the bench,
no gunicorn): per-request time, SQL queries and their share, and the top cProfile rows.

    DJANGO_SETTINGS_MODULE=config.settings.bench DATABASE_URL=.../growth_bench \
        REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/profile_path.py \
        [validate|apply|bare] [-n 500]

bench/run.sh runs it with BENCH_PROFILE=1. Apply uses BENCH25 (no limits) with a new
order, customer and Idempotency-Key per call, so it profiles the success path.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from core.models import ApiKey  # noqa: E402


def cart() -> dict:
    categories = ["electronics", "home", "apparel", "grocery"]
    items = [
        {
            "sku": f"SKU-{i}",
            "category": categories[i % 4],
            "unit_price": f"{5 + i * 3}.{(i * 17) % 100:02d}",
            "quantity": 1 + i % 3,
        }
        for i in range(1, 21)
    ]
    return {"currency": "USD", "items": items, "shipping": "7.99"}


class QueryLog:
    """connection.execute_wrapper: count queries and the time spent waiting on them, and
    how long the coupon row lock is held (its SELECT ... FOR UPDATE until the COMMIT
    returns): on a hot coupon, throughput can never exceed 1 / that time."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0
        self.sql: list[str] = []
        self.lock_started: float | None = None
        self.lock_held: list[float] = []
        self.commit_seconds = 0.0
        self.locked_sql_seconds = 0.0
        self.locked_statements = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        if (
            self.lock_started is None
            and "FOR UPDATE" in sql
            and re.search(r'FROM "?coupons_coupon"?', sql)
        ):
            self.lock_started = started
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            self.seconds += spent
            self.count += 1
            self.sql.append(sql)
            if self.lock_started is not None:
                self.locked_sql_seconds += spent
                self.locked_statements += 1

    def commit_hook(self, commit):
        def wrapped():
            started = time.perf_counter()
            try:
                return commit()
            finally:
                ended = time.perf_counter()
                self.commit_seconds += ended - started
                if self.lock_started is not None:
                    self.locked_sql_seconds += ended - started
                    self.locked_statements += 1
                if self.lock_started is not None:
                    self.lock_held.append(ended - self.lock_started)
                    self.lock_started = None

        return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "path", nargs="?", default="validate", choices=["validate", "apply", "bare"]
    )
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    key = os.environ.get("BENCH_API_KEY")
    if not key:
        _, key = ApiKey.objects.create_key(name="bench-profile", scopes=["storefront"])
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    body = cart()
    run = uuid.uuid4().hex[:8]

    def call(i: int):
        if args.path == "bare":
            return client.get("/bench/bare")
        payload = {"coupon_code": "BENCH25", "customer": {"id": f"p-{run}-{i}"}, "cart": body}
        if args.path == "validate":
            return client.post("/api/v1/coupons/validate", payload, content_type="application/json")
        payload["order_id"] = f"po-{run}-{i}"
        return client.post(
            "/api/v1/coupons/apply",
            payload,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"pk-{run}-{i}",
        )

    for i in range(50):  # warm caches, the pool and imports
        response = call(-1 - i)
        assert response.status_code == 200, response.content  # noqa: S101
    log = QueryLog()
    plain_commit = connection.commit
    connection.commit = log.commit_hook(plain_commit)
    try:
        with connection.execute_wrapper(log):
            started = time.perf_counter()
            for i in range(args.n):
                call(i)
            elapsed = time.perf_counter() - started
    finally:
        connection.commit = plain_commit
    one = QueryLog()
    with connection.execute_wrapper(one):
        call(args.n + 1)
    print(f"== {args.path}: {args.n} calls in-process (django.test.Client, no server)")
    print(
        f"per request: {elapsed / args.n * 1000:.2f} ms, {log.count / args.n:.1f} SQL "
        f"queries, {log.seconds / args.n * 1000:.2f} ms waiting on PostgreSQL "
        f"({log.seconds / elapsed:.0%})"
    )
    if log.lock_held:
        held = sorted(log.lock_held)
        print(
            f"coupon row lock held per apply: avg {sum(held) / len(held) * 1000:.2f} ms, "
            f"p50 {held[len(held) // 2] * 1000:.2f} ms (SELECT ... FOR UPDATE to COMMIT "
            f"done) -> at most {len(held) / sum(held):.0f} applies/s on one coupon; "
            f"COMMITs {log.commit_seconds / args.n * 1000:.2f} ms per request"
        )
        print(
            f"  of which {log.locked_statements / len(held):.1f} statements (COMMIT "
            f"included) waiting on PostgreSQL: "
            f"{log.locked_sql_seconds / len(held) * 1000:.2f} ms; the rest is Python "
            f"(ORM query building, pricing) while the row stays locked"
        )
    print("queries of one request:")
    for sql in one.sql:
        print("   ", " ".join(sql.split())[:150])

    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(args.n):
        call(args.n + 2 + i)
    profiler.disable()
    for sort in ("tottime", "cumulative"):
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats(sort).print_stats(args.top)
        text = stream.getvalue()
        print(f"-- top {args.top} by {sort} (cProfile, {args.n} calls) --")
        print(text[text.find("   ncalls") :].rstrip())


if __name__ == "__main__":
    main()
