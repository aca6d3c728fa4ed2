"""Where a renewal's and a subscribe's time goes, in one process (no Celery, no HTTP):
queries per renewal by phase and by statement, time per phase, and the top cProfile rows.

    DJANGO_SETTINGS_MODULE=config.settings.bench DATABASE_URL=.../growth_bench \
        REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/billing_profile.py \
        renewals|subscribe [-n 5000] [--top 30]

renewals: seeds N due subscriptions (bench/billing.py's seed) and runs
  billing.renewals.run_due() once, in this process, under cProfile, with every statement
  counted and timed (connection.execute_wrapper) and the phases timed by wrapping the
  module functions here (billing/ is not changed): the batch transaction (lock the due
  rows, roll each: invoice, line, number, pending attempt; commit), and the charge of each
  attempt after commit (the gateway call, then recording the answer).
subscribe: N PUT customer + POST subscription through django.test.Client (the view, the
  idempotency layer, the service, the gateway), the same counts.
The bench rows are removed afterwards (bench/billing.py's cleanup). The Celery tasks the
code queues (outbox deliveries) go to bench/billing.py's private broker, Redis db 10
(flushed at the end).
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
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
# Always the private broker db of bench/billing.py (flushed at the end), never bench/run.sh's.
os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/10"
os.environ.setdefault("BILLING_TEST_GATEWAY_LATENCY_MS", "0")

import django

django.setup()

from django.db import connection  # noqa: E402

import bench.billing as bb  # noqa: E402


class QueryLog:
    """Statements by phase and by shape, and the time spent waiting on them."""

    def __init__(self) -> None:
        self.phase = "other"
        self.count: Counter = Counter()
        self.seconds: defaultdict = defaultdict(float)
        self.shapes: Counter = Counter()
        self.shape_seconds: defaultdict = defaultdict(float)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.count[self.phase] += 1
            self.seconds[self.phase] += elapsed
            raw = (self.phase, sql[:300])  # shaped once, in report(): cheap while timing
            self.shapes[raw] += 1
            self.shape_seconds[raw] += elapsed


def _shape(sql: str) -> str:
    sql = re.sub(r"\s+", " ", sql.strip())
    sql = re.sub(r'"billing_(\w+)"\."(\w+)"', r"\2", sql)
    sql = re.sub(r"SELECT .*? FROM", "SELECT … FROM", sql, count=1)
    sql = re.sub(r"\(%s(, %s)*\)", "(…)", sql)
    return sql[:110]


class Phases:
    """Wall time inside wrapped functions (outermost call only per name)."""

    def __init__(self, log: QueryLog) -> None:
        self.log = log
        self.seconds: defaultdict = defaultdict(float)
        self.calls: Counter = Counter()

    def wrap(self, module, name: str, label: str, query_phase: str | None = None) -> None:
        """Time `module.name` (skipped, with a note, when the code no longer has it)."""
        original = getattr(module, name, None)
        if original is None:
            print(f"  (not timed: {getattr(module, '__name__', module)}.{name} is gone)")
            return

        def wrapper(*args, **kwargs):
            previous = self.log.phase
            if query_phase:
                self.log.phase = query_phase
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1
                self.log.phase = previous

        setattr(module, name, wrapper)


def report(title: str, n: int, wall: float, log: QueryLog, phases: Phases, prof, top: int):
    print(f"\n{title}: {n:,} in {wall:.2f} s = {wall / n * 1000:.2f} ms each")
    total_q = sum(log.count.values())
    total_qs = sum(log.seconds.values())
    print(
        f"  statements: {total_q / n:.1f} per item, waiting on PostgreSQL "
        f"{total_qs / n * 1000:.2f} ms per item ({total_qs / wall:.0%} of the wall time)"
    )
    for phase in sorted(log.count, key=lambda p: -log.seconds[p]):
        print(
            f"    {phase:<22} {log.count[phase] / n:5.1f} statements/item  "
            f"{log.seconds[phase] / n * 1000:6.2f} ms/item waiting"
        )
    print("  phases (wall time inside; nested phases are included in their parent):")
    for label in sorted(phases.seconds, key=lambda k: -phases.seconds[k]):
        print(
            f"    {label:<34} {phases.seconds[label] / n * 1000:6.2f} ms/item "
            f"({phases.calls[label]:,} calls, {phases.seconds[label] / wall:.0%})"
        )
    shapes: Counter = Counter()
    shape_seconds: defaultdict = defaultdict(float)
    for (phase, sql), count in log.shapes.items():
        shape = f"{phase}: {_shape(sql)}"
        shapes[shape] += count
        shape_seconds[shape] += log.shape_seconds[(phase, sql)]
    print("  statements by shape (per item, ms waiting per item):")
    for shape, count in shapes.most_common(40):
        print(f"    {count / n:5.3f}  {shape_seconds[shape] / n * 1000:6.3f} ms  {shape}")
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
    stats.print_stats(top)
    print("  cProfile, by cumulative time (profiler overhead inflates Python time):")
    print("\n".join("    " + line for line in out.getvalue().splitlines()[6:]))
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    print("  cProfile, by own time:")
    print("\n".join("    " + line for line in out.getvalue().splitlines()[6:]))


def profile_renewals(n: int, top: int) -> None:
    from billing import events, invoicing, locks, renewals
    from billing.payments import gateway
    from billing.payments import services as payments

    bb.cleanup()
    seeded = bb.seed(n)
    print(f"seeded {seeded['due']:,} due subscriptions in {seeded['seed_s']} s")
    log = QueryLog()
    phases = Phases(log)
    phases.wrap(renewals, "_subscriptions_batch", "batch transaction (lock + roll)", "batch")
    phases.wrap(renewals, "_renew_plain", "  bulk renewal of the plain ones")
    phases.wrap(renewals, "roll", "  roll one subscription")
    phases.wrap(invoicing, "invoice_create", "    invoice_create")
    phases.wrap(locks, "counter_take", "    counter_take (numbers)")
    phases.wrap(payments, "attempt_create", "    attempt_create")
    phases.wrap(renewals, "_charge", "charge the batch (after commit)", "charge")
    phases.wrap(payments, "attempt_call", "  gateway calls", "charge: gateway")
    phases.wrap(gateway.TestGateway, "charge", "    TestGateway.charge")
    phases.wrap(payments, "attempt_record", "  attempt_record (one by one)", "charge: record")
    phases.wrap(payments, "attempts_record_paid", "  attempts_record_paid (bulk)", "charge: record")
    phases.wrap(events, "emit_many", "    events.emit_many")
    phases.wrap(events, "emit", "    events.emit")
    phases.wrap(events, "_queue", "    outbox delivery queued (Redis)")
    phases.wrap(events, "_queue_many", "    outbox deliveries queued (Redis)")
    phases.wrap(renewals, "_retries_batch", "retries batch", "retries")
    phases.wrap(renewals, "_grace_batch", "grace batch", "grace")
    prof = cProfile.Profile()
    try:
        with connection.execute_wrapper(log):
            started = time.perf_counter()
            prof.enable()
            handled = renewals.run_due()
            prof.disable()
            wall = time.perf_counter() - started
        print(f"run_due handled {handled:,}")
        report("renewals (one process)", n, wall, log, phases, prof, top)
    finally:
        bb.cleanup()


def profile_subscribe(n: int, top: int) -> None:
    from django.test import Client

    from billing import invoicing, locks, services
    from billing.payments import services as payments
    from core.models import ApiKey, Scope

    bb.cleanup()
    bb.plan_get()
    ApiKey.objects.filter(name="bench-billing-profile").delete()
    _, key = ApiKey.objects.create_key(name="bench-billing-profile", scopes=[Scope.STOREFRONT])
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    tag = f"{bb.PREFIX}prof-{time.strftime('%H%M%S')}-"

    def one(i: int, log: QueryLog) -> None:
        cid = f"{tag}{i}"
        log.phase = "put customer"
        r = client.put(
            f"/api/v1/billing/customers/{cid}",
            {"payment_method": "pm_card_visa"},
            content_type="application/json",
        )
        if r.status_code != 200:
            raise RuntimeError(f"PUT customer: {r.status_code} {r.content!r}")
        log.phase = "subscribe"
        r = client.post(
            "/api/v1/billing/subscriptions",
            {"customer_id": cid, "plan": bb.PLAN, "trial": False},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"{cid}-sub",
        )
        if r.status_code != 201:
            raise RuntimeError(f"subscribe: {r.status_code} {r.content!r}")
        log.phase = "other"

    warm = QueryLog()
    with connection.execute_wrapper(warm):
        for i in range(20):
            one(-1 - i, warm)
    log = QueryLog()
    phases = Phases(log)
    phases.wrap(services, "subscription_create", "subscription_create")
    phases.wrap(services, "_subscribe_tx", "  subscribe transaction", "subscribe: txn")
    phases.wrap(invoicing, "invoice_create", "    invoice_create")
    phases.wrap(locks, "counter_take", "      counter_take (number)")
    phases.wrap(payments, "attempt_settle", "  charge (after commit)", "subscribe: charge")
    phases.wrap(payments, "attempt_call", "    gateway call")
    prof = cProfile.Profile()
    with connection.execute_wrapper(log):
        started = time.perf_counter()
        prof.enable()
        for i in range(n):
            one(i, log)
        prof.disable()
        wall = time.perf_counter() - started
    report(
        "PUT customer + subscribe (one process, django.test.Client)",
        n,
        wall,
        log,
        phases,
        prof,
        top,
    )
    ApiKey.objects.filter(name="bench-billing-profile").delete()
    bb.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["renewals", "subscribe"])
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    from django.conf import settings

    if "bench" not in settings.DATABASES["default"]["NAME"]:
        sys.exit("refusing to run outside the growth_bench database")
    try:
        if args.what == "renewals":
            profile_renewals(args.n or 5000, args.top)
        else:
            profile_subscribe(args.n or 300, args.top)
    finally:
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


if __name__ == "__main__":
    main()
