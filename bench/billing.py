"""Billing benchmark (issue 13): N due monthly renewals through the real beat job on two
Celery workers, next to a plain SQL INSERT of the same invoice rows; and subscribe over
HTTP (p50/p95/p99).

    DJANGO_SETTINGS_MODULE=config.settings.bench DATABASE_URL=.../growth_bench \
        REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/billing.py renewals \
        RESULTS.jsonl [--subs 100000] [--workers 2] [--broker redis://127.0.0.1:6379/10]
    .venv/bin/python bench/billing.py subscribe RESULTS.jsonl --port P --key KEY \
        [--requests 2000] [--concurrency 8]
    .venv/bin/python bench/billing.py cleanup

(bench/billing.sh sets all that up and starts gunicorn for `subscribe`.)

renewals:
  1. seed, set-wise SQL (INSERT ... SELECT generate_series): N wall-clock customers
     (`bench-billing-renew-<i>`, payment method pm_card_visa) with an active monthly
     subscription on plan `bench-billing` whose first period ended an hour ago, as
     billing/tests/support.py `due_subscriptions` builds them; then ANALYZE.
  2. baseline: the same N invoice rows (and one line each) by one plain
     `INSERT ... SELECT` each into scratch tables `CREATE TABLE ... (LIKE billing_invoice
     / billing_invoiceline INCLUDING ALL)` (same columns, checks, indexes; no foreign
     keys), in one transaction, timed; then the scratch tables are dropped.
  3. job: start `--workers` `celery -A config worker --concurrency 1` processes on the
     default queue of a private broker (Redis db 10, flushed before and after), with
     BILLING_RENEWAL_PARALLELISM = workers and the test gateway without latency; send
     `billing.run_due` once and time from the send until every seeded subscription has
     one paid `subscription_cycle` invoice (a COUNT every 0.5 s, progress every 5 s).
  4. check: each subscription has exactly one cycle invoice, paid, and was rolled to
     period 1; N succeeded payment attempts and N test-gateway charges for them; the N
     invoice numbers are distinct and consecutive and the invoice counter moved by N
     (gapless) -> EXACT or NOT EXACT.
subscribe: creates the plan if needed, then (phase 1) PUT /api/v1/billing/customers/{id}
  with pm_card_visa for each of `--requests` new customers, and (phase 2) POST
  /api/v1/billing/subscriptions (plan bench-billing, no trial, a fresh Idempotency-Key)
  for each, `--concurrency` client threads, a new connection per request; latency is
  connect to last byte. Each phase reports req/s and p50/p95/p99; then PostgreSQL must
  hold one active subscription with a paid invoice per 201.
cleanup: deletes every `bench-billing-*` customer and everything hanging off it, the
  plan and its history, the subscribe calls' idempotency records; then VACUUM ANALYZE.

Timing never fails anything. Exit status: 0 with numbers, 2 when it cannot set up, 1 on
a wrong result (NOT EXACT).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.machine import cpu_busy_since, cpu_mark  # noqa: E402 (after sys.path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

PLAN = "bench-billing"
PREFIX = "bench-billing-"
DEFAULT_BROKER = "redis://127.0.0.1:6379/10"  # private: nothing else of the repo uses db 10


def _django(broker: str | None = None) -> None:
    if broker:
        os.environ["CELERY_BROKER_URL"] = broker
    import django

    django.setup()


def code_version() -> dict:
    """The commit measured, and how many tracked files differed from it (the billing code
    changes under a running bench in a shared checkout)."""

    def git(*argv: str) -> str:
        try:
            return subprocess.run(  # noqa: S603 - fixed argv
                [shutil.which("git") or "git", *argv],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "?",
        "modified_files": len(status),
        "modified_billing": sorted(line[3:] for line in status if line[3:].startswith("billing/")),
    }


def _emit(row: dict, out: Path | None) -> None:
    row = {**row, **code_version()}
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU seconds used by the PostgreSQL backends connected to `database` (the workers'
    sessions and this script's; not other databases' sessions on a shared server, nor
    the walwriter and checkpointer) since start(): sample() every poll, so a backend that
    exits mid-run keeps what it used up to its last sample."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} "
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if not title.startswith("postgres:") or self.marker not in title:
                continue
            seconds = proc_cpu_seconds(int(entry))
            if seconds is not None:
                found[int(entry)] = seconds
        return found

    def start(self) -> None:
        self.first = self._read()
        self.last = dict(self.first)

    def sample(self) -> None:
        self.last.update(self._read())

    def seconds(self) -> float:
        return sum(v - self.first.get(pid, 0.0) for pid, v in self.last.items())


# --- seed and cleanup ---------------------------------------------------------------------


def plan_get():
    from billing.models import Plan

    plan, _ = Plan.objects.get_or_create(
        code=PLAN,
        defaults={
            "name": "Bench",
            "amount_minor": 2900,
            "currency": "USD",
            "interval": "month",
            "trial_days": 0,
        },
    )
    return plan


def cleanup(vacuum: bool = True) -> None:
    """Remove every bench-billing customer and what hangs off it, in FK order."""
    from django.db import connection

    like = PREFIX + "%"
    statements = [
        "CREATE TEMP TABLE bench_c ON COMMIT DROP AS "
        "SELECT id, customer_id FROM billing_billingcustomer WHERE customer_id LIKE %s",
        "CREATE TEMP TABLE bench_i ON COMMIT DROP AS "
        "SELECT id FROM billing_invoice WHERE customer_id IN (SELECT id FROM bench_c)",
        "DELETE FROM billing_testgatewaycharge WHERE idempotency_key IN "
        "(SELECT a.id::text FROM billing_paymentattempt a JOIN bench_i i ON i.id = a.invoice_id)",
        "DELETE FROM billing_paymentattempt WHERE invoice_id IN (SELECT id FROM bench_i)",
        "DELETE FROM billing_invoiceline WHERE invoice_id IN (SELECT id FROM bench_i)",
        "DELETE FROM billing_creditnote WHERE invoice_id IN (SELECT id FROM bench_i)",
        "DELETE FROM billing_creditentry WHERE customer_id IN (SELECT id FROM bench_c)",
        "DELETE FROM billing_invoice WHERE id IN (SELECT id FROM bench_i)",
        "DELETE FROM billing_subscriptiontransition WHERE subscription_id IN "
        "(SELECT id FROM billing_subscription WHERE customer_id IN (SELECT id FROM bench_c))",
        "DELETE FROM billing_subscription WHERE customer_id IN (SELECT id FROM bench_c)",
        "DELETE FROM billing_outboxevent WHERE payload->>'customer_id' LIKE %s",
        "DELETE FROM billing_billingcustomer WHERE id IN (SELECT id FROM bench_c)",
        "DELETE FROM core_idempotencyrecord WHERE key LIKE %s",
        "DELETE FROM billing_historicalplan WHERE code = %s",
        "DELETE FROM billing_plan WHERE code = %s",
        "DROP TABLE IF EXISTS bench_billing_invoice, bench_billing_invoiceline",
    ]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        for sql in statements:
            params = [PLAN] if "code = %s" in sql else ([like] if "%s" in sql else [])
            cursor.execute(sql, params)
        cursor.execute("COMMIT")
        if vacuum:  # deleted rows by the 100,000: the next run must not insert into bloat
            for table in (
                "billing_billingcustomer",
                "billing_subscription",
                "billing_subscriptiontransition",
                "billing_invoice",
                "billing_invoiceline",
                "billing_paymentattempt",
                "billing_testgatewaycharge",
                "billing_outboxevent",
                "core_idempotencyrecord",
            ):
                cursor.execute(f"VACUUM (ANALYZE) {table}")


def seed(n: int) -> dict:
    """N due wall-clock subscriptions on the bench plan (support.due_subscriptions's shape)."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from billing.engine import periods

    plan = plan_get()
    now = timezone.now()
    anchor = periods.add_months(now - timedelta(hours=1), -1)
    start, end = periods.bounds(anchor, plan.interval, 0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(
            "INSERT INTO billing_billingcustomer (customer_id, email, name, payment_method, "
            "currency, credit_balance_minor, created_at, updated_at, test_clock_id) "
            "SELECT %s || i, '', '', 'pm_card_visa', 'USD', 0, %s, %s, NULL "
            "FROM generate_series(1, %s) i",
            [PREFIX + "renew-", start, start, n],
        )
        # idempotency_principal/key/fingerprint: their db defaults ('').
        cursor.execute(
            "INSERT INTO billing_subscription (id, customer_id, plan_id, status, anchor, "
            "period_index, current_period_start, current_period_end, trial_end, "
            "cancel_at_period_end, pending_plan_id, coupon_code, coupon_id, coupon_order_id, "
            "discount_remaining, past_due_since, cancelled_at, ended_at, created_at, "
            "updated_at) "
            "SELECT gen_random_uuid(), c.id, %s, 'active', %s, 0, %s, %s, NULL, false, NULL, "
            "'', NULL, '', NULL, NULL, NULL, NULL, %s, %s "
            "FROM billing_billingcustomer c WHERE c.customer_id LIKE %s",
            [plan.pk, anchor, start, end, start, start, PREFIX + "renew-%"],
        )
        cursor.execute("COMMIT")
        cursor.execute("ANALYZE billing_billingcustomer")
        cursor.execute("ANALYZE billing_subscription")
        cursor.execute(
            "SELECT count(*) FROM billing_subscription WHERE plan_id = %s AND status = 'active' "
            "AND current_period_end <= now()",
            [plan.pk],
        )
        due = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM billing_subscription s JOIN billing_billingcustomer c "
            "ON c.id = s.customer_id WHERE c.test_clock_id IS NULL AND s.current_period_end "
            "<= now() AND s.status IN ('active', 'trialing')"
        )
        due_all = cursor.fetchone()[0]
    return {
        "plan_id": plan.pk,
        "due": due,
        "due_all": due_all,
        "seed_s": round(time.perf_counter() - started, 2),
    }


# --- the plain SQL baseline ---------------------------------------------------------------


def baseline(plan_id: int) -> dict:
    """Seconds to INSERT ... SELECT the same invoice rows (one per seeded subscription,
    period 1, open -> paid, numbered) and one line each into scratch copies of the two
    tables (LIKE ... INCLUDING ALL: columns, defaults, checks, indexes; no FKs)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_billing_invoice, bench_billing_invoiceline")
        cursor.execute("CREATE TABLE bench_billing_invoice (LIKE billing_invoice INCLUDING ALL)")
        cursor.execute(
            "CREATE TABLE bench_billing_invoiceline (LIKE billing_invoiceline INCLUDING ALL)"
        )
        started = time.perf_counter()
        cursor.execute("BEGIN")
        cursor.execute(
            "INSERT INTO bench_billing_invoice (id, number, billing_reason, status, currency, "
            "period_start, period_end, subtotal_minor, discount_minor, credit_applied_minor, "
            "total_minor, amount_paid_minor, amount_refunded_minor, attempt_count, "
            "first_failed_at, next_attempt_at, finalized_at, paid_at, voided_at, created_at, "
            "customer_id, plan_id, subscription_id) "
            "SELECT gen_random_uuid(), 'BENCH-' || lpad((row_number() OVER ())::text, 6, '0'), "
            "'subscription_cycle', 'paid', p.currency, s.current_period_end, "
            "s.current_period_end + interval '1 month', p.amount_minor, 0, 0, p.amount_minor, "
            "p.amount_minor, 0, 1, NULL, NULL, s.current_period_end, now(), NULL, "
            "s.current_period_end, s.customer_id, p.id, s.id "
            "FROM billing_subscription s JOIN billing_plan p ON p.id = s.plan_id "
            "WHERE s.plan_id = %s",
            [plan_id],
        )
        invoices = cursor.rowcount
        cursor.execute(
            "INSERT INTO bench_billing_invoiceline (position, kind, description, quantity, "
            "amount_minor, invoice_id) "
            "SELECT 0, 'subscription', 'Bench (' || to_char(i.period_start, 'Mon DD, YYYY') "
            "|| ' - ' || to_char(i.period_end, 'Mon DD, YYYY') || ')', 1, i.subtotal_minor, i.id "
            "FROM bench_billing_invoice i"
        )
        lines = cursor.rowcount
        cursor.execute("COMMIT")
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_billing_invoice, bench_billing_invoiceline")
    return {"seconds": elapsed, "invoices": invoices, "lines": lines}


# --- the job: real workers, the beat task sent once ----------------------------------------


class Worker:
    """One `celery -A config worker --concurrency 1` on the private broker's default queue."""

    def __init__(
        self, index: int, log_path: Path, broker: str, parallelism: int, time_limit: int | None
    ):
        from tests.faults.conftest import children_of

        self.children_of = children_of
        self.log_path = log_path
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "CELERY_BROKER_URL": broker,
            "BILLING_RENEWAL_PARALLELISM": str(parallelism),
            "BILLING_GATEWAY": "test",
            "BILLING_TEST_GATEWAY_LATENCY_MS": "0",
            "BILLING_TEST_GATEWAY_FAILURE": "none",
        }
        if time_limit:  # else the product's CELERY_TASK_SOFT_TIME_LIMIT (300 s) and hard limit
            env["CELERY_TASK_SOFT_TIME_LIMIT"] = str(time_limit)
            env["CELERY_TASK_TIME_LIMIT"] = str(time_limit + 60)
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                str(ROOT / ".venv/bin/celery"),
                "-A",
                "config",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-Q",
                "celery",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"billing-bench-{index}-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pool_pid: int | None = None

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"celery exited (see {self.log_path})")
        kids = self.children_of(self.proc.pid)
        if " ready." in self.log_path.read_text(errors="replace") and len(kids) == 1:
            self.pool_pid = kids[0]
            return True
        return False

    def cpu_seconds(self) -> float:
        total = proc_cpu_seconds(self.proc.pid) or 0.0
        if self.pool_pid:
            total += proc_cpu_seconds(self.pool_pid) or 0.0
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def table_scans(cursor) -> dict[str, tuple[int, int]]:
    """(seq_scan, seq_tup_read) of billing's tables, from pg_stat_user_tables."""
    cursor.execute(
        "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables "
        "WHERE relname LIKE 'billing%%'"
    )
    return {name: (scans, rows) for name, scans, rows in cursor.fetchall()}


def _counter_value() -> int:
    from billing.invoicing import COUNTER
    from billing.models import InvoiceCounter

    row = InvoiceCounter.objects.filter(name=COUNTER).first()
    return row.last_number if row else 0


def _progress(cursor, plan_id: int) -> tuple[int, int]:
    cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'paid') FROM billing_invoice "
        "WHERE plan_id = %s AND billing_reason = 'subscription_cycle'",
        [plan_id],
    )
    created, paid = cursor.fetchone()
    return created, paid


def run_job(n: int, plan_id: int, workers: list[Worker], broker: str, args) -> dict:
    from celery import Celery
    from django.db import connection

    counter_before = _counter_value()
    sender = Celery("billing-bench", broker=broker)
    cpu_before = [w.cpu_seconds() for w in workers]
    pg_cpu = PostgresCpu(connection.settings_dict["NAME"])
    pg_cpu.start()
    with connection.cursor() as cursor:
        scans_before = table_scans(cursor)
    mark = cpu_mark()
    created_at_s = None
    last_progress_s = 0.0
    stalled = False
    try:
        started = time.perf_counter()
        sender.send_task("billing.run_due", queue="celery")
        last_report = started
        last_change, last_seen = started, (-1, -1)
        with connection.cursor() as cursor:
            while True:
                time.sleep(0.5)
                created, paid = _progress(cursor, plan_id)
                pg_cpu.sample()
                now = time.perf_counter()
                if created_at_s is None and created >= n:
                    created_at_s = now - started
                if paid >= n:
                    break
                if (created, paid) != last_seen:
                    last_change, last_seen = now, (created, paid)
                    last_progress_s = now - started
                if now - last_report >= args.progress_every:
                    last_report = now
                    rate = paid / (now - started)
                    print(
                        f"  {now - started:7.1f} s: {created:>7,} invoices, {paid:>7,} paid "
                        f"({rate:,.0f}/s)",
                        flush=True,
                    )
                if now - last_change > args.stall or now - started > args.timeout:
                    stalled = True
                    break
        elapsed = time.perf_counter() - started
    finally:
        sender.close()
    worker_cpu = [round(w.cpu_seconds() - b, 1) for w, b in zip(workers, cpu_before, strict=True)]
    # Sequential scans of billing's tables during the job (the statistics are flushed by
    # the backends about once a second: read them after a pause). A renewal needs none; a
    # plan cached while a table was small can scan it whole per row (docs/benchmarks.md).
    time.sleep(1.5)
    with connection.cursor() as cursor:
        scans_after = table_scans(cursor)
    seq_scans = {
        name: [scans - scans_before.get(name, (0, 0))[0], rows - scans_before.get(name, (0, 0))[1]]
        for name, (scans, rows) in scans_after.items()
        if scans - scans_before.get(name, (0, 0))[0] > 0
    }
    return {
        "seconds": elapsed,
        "invoices_created_s": round(created_at_s, 2) if created_at_s is not None else None,
        "stalled": stalled,
        "last_progress_s": round(last_progress_s, 2),
        "counter_before": counter_before,
        "cpu_busy_pct": cpu_busy_since(mark),
        "worker_cpu_s": worker_cpu,
        "postgres_cpu_s": round(pg_cpu.seconds(), 1),
        "seq_scans": seq_scans,
    }


def check(n: int, plan_id: int, counter_before: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE k = 1), count(*) FILTER (WHERE k = 0), "
            "count(*) FILTER (WHERE k > 1), count(*) FILTER (WHERE paid = 1 AND k = 1), "
            "count(*) FILTER (WHERE period_index = 1 AND current_period_end > now()) "
            "FROM (SELECT s.id, s.period_index, s.current_period_end, "
            "  count(i.id) AS k, count(i.id) FILTER (WHERE i.status = 'paid') AS paid "
            "  FROM billing_subscription s LEFT JOIN billing_invoice i ON i.subscription_id = s.id"
            "  AND i.billing_reason = 'subscription_cycle' "
            "  WHERE s.plan_id = %s AND s.customer_id IN (SELECT id FROM billing_billingcustomer"
            "  WHERE customer_id LIKE %s) GROUP BY s.id) t",
            [plan_id, PREFIX + "renew-%"],
        )
        one, none, more, one_paid, rolled = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE a.status = 'succeeded'), count(g.id), "
            "count(DISTINCT a.invoice_id) "
            "FROM billing_paymentattempt a JOIN billing_invoice i ON i.id = a.invoice_id "
            "LEFT JOIN billing_testgatewaycharge g ON g.idempotency_key = a.id::text "
            "WHERE i.plan_id = %s AND i.billing_reason = 'subscription_cycle'",
            [plan_id],
        )
        attempts, succeeded, charges, charged_invoices = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(DISTINCT number), "
            "min(split_part(number, '-', -1)::bigint), max(split_part(number, '-', -1)::bigint) "
            "FROM billing_invoice WHERE plan_id = %s AND billing_reason = 'subscription_cycle'",
            [plan_id],
        )
        numbered, distinct, low, high = cursor.fetchone()
    counter_after = _counter_value()
    # Gapless: the numbers the run took are distinct and consecutive, follow the counter's
    # value before the run, and the counter moved by exactly that many.
    gapless = (
        numbered == distinct
        and low is not None
        and high - low + 1 == numbered
        and low == counter_before + 1
        and counter_after - counter_before == numbered
    )
    exact = (
        one == n
        and none == more == 0
        and one_paid == n
        and rolled == n
        and attempts == succeeded == charges == charged_invoices == n
        and numbered == n
        and gapless
    )
    return {
        "invoices": numbered,
        "subs_one_invoice": one,
        "subs_no_invoice": none,
        "subs_more_invoices": more,
        "subs_one_paid": one_paid,
        "subs_rolled": rolled,
        "attempts": attempts,
        "attempts_succeeded": succeeded,
        "gateway_charges": charges,
        "numbers_first": low,
        "numbers_last": high,
        "numbers_distinct": distinct,
        "counter_moved": counter_after - counter_before,
        "gapless": gapless,
        "exact": exact,
    }


def renewals(args) -> int:
    _django(args.broker)
    from django.conf import settings

    db_name = settings.DATABASES["default"]["NAME"]
    if "bench" not in db_name:
        print(f"refusing to run against {db_name!r}: use growth_bench", file=sys.stderr)
        return 2
    import redis

    broker = redis.Redis.from_url(args.broker)
    broker.flushdb()  # its own db: tasks left by an interrupted run must not run now
    cleanup()
    n = args.subs
    print(f"seeding {n:,} due subscriptions (set-wise SQL)", flush=True)
    seeded = seed(n)
    if seeded["due"] != n:
        print(f"seed: {seeded['due']} due, expected {n}", file=sys.stderr)
        return 2
    if seeded["due_all"] != n:
        print(
            f"note: {seeded['due_all'] - n} other wall-clock subscriptions are due in "
            f"{db_name}; the job renews them too",
            flush=True,
        )
    base = baseline(seeded["plan_id"])
    print(
        f"baseline: plain INSERT ... SELECT of {base['invoices']:,} invoices + "
        f"{base['lines']:,} lines: {base['seconds']:.2f} s",
        flush=True,
    )
    log_dir = ROOT / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = [
        Worker(
            i,
            log_dir / f"billing-worker{i}-{args.run_id}.log",
            args.broker,
            args.workers,
            args.task_time_limit,
        )
        for i in range(args.workers)
    ]
    row: dict = {}
    try:
        deadline = time.monotonic() + 60
        try:
            while not all(w.ready() for w in workers):
                if time.monotonic() > deadline:
                    raise RuntimeError("celery workers not ready in 60 s")
                time.sleep(0.2)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(
            f"job: billing.run_due sent once, {args.workers} workers "
            f"(BILLING_RENEWAL_PARALLELISM={args.workers}), test gateway, no latency",
            flush=True,
        )
        job = run_job(n, seeded["plan_id"], workers, args.broker, args)
        result = check(n, seeded["plan_id"], job["counter_before"])
    finally:
        for w in workers:
            w.stop()
        broker.flushdb()
        broker.close()
    logs = "".join(w.log_path.read_text(errors="replace") for w in workers)
    row = {
        "kind": "billing_renewals",
        "run_id": args.run_id,
        "subs": n,
        "workers": args.workers,
        "background_busy_pct": args.background_busy,
        "seed_s": seeded["seed_s"],
        "baseline_s": round(base["seconds"], 3),
        "job_s": round(job["seconds"], 2),
        "ratio": round(job["seconds"] / base["seconds"], 1) if base["seconds"] else None,
        # A stalled run: the rate up to its last progress, not over the wait that follows.
        "renewals_per_s": round(
            result["subs_one_paid"]
            / ((job["last_progress_s"] or job["seconds"]) if job["stalled"] else job["seconds"]),
            1,
        ),
        **{k: v for k, v in job.items() if k not in ("seconds", "counter_before")},
        **result,
        "task_soft_time_limit": args.task_time_limit,
        "worker_errors": logs.count("ERROR/"),
        "time_limit_hits": logs.count("ime limit ("),  # "Soft time limit (300s) exceeded"
    }
    _emit(row, args.results)
    if not args.keep:
        cleanup()
    verdict = "EXACT" if row["exact"] else "NOT EXACT"
    print(
        f"\nRenewals: {n:,} due monthly subscriptions, {args.workers} Celery workers, "
        f"billing.run_due sent once (target: < 60 s)"
    )
    if job["stalled"]:
        print(
            f"  job STALLED: {result['subs_one_paid']:,} of {n:,} renewed, the last at "
            f"{job['last_progress_s']:.1f} s ({row['renewals_per_s']:,.0f} renewals/s until "
            f"then); given up at {row['job_s']:.1f} s"
        )
    else:
        print(
            f"  job {row['job_s']:.1f} s ({row['renewals_per_s']:,.0f} renewals/s; all "
            f"invoices created at {row['invoices_created_s']} s)"
        )
    print(
        f"  plain SQL insert of the same {n:,} invoices + lines: {row['baseline_s']:.2f} s "
        f"-> ratio {row['ratio']}x"
    )
    print(
        f"  CPU: machine {row['cpu_busy_pct']}% busy during the job; worker processes "
        f"{row['worker_cpu_s']} s, PostgreSQL {row['postgres_cpu_s']} s"
    )
    heavy = {k: v for k, v in row["seq_scans"].items() if v[1] > n}
    if heavy:
        print(
            "  sequential scans during the job (table: scans, rows read): "
            + ", ".join(f"{k}: {v[0]:,}, {v[1]:,}" for k, v in sorted(heavy.items()))
        )
    print(
        f"  check: {result['subs_one_paid']:,} subscriptions with exactly one paid cycle "
        f"invoice ({result['subs_no_invoice']} with none, {result['subs_more_invoices']} with "
        f"more), {result['subs_rolled']:,} rolled, {result['gateway_charges']:,} gateway "
        f"charges, numbers {result['numbers_first']}..{result['numbers_last']} "
        f"({'gapless' if result['gapless'] else 'NOT gapless'}) -> {verdict}"
    )
    if row["worker_errors"] or row["time_limit_hits"]:
        print(
            f"  workers logged {row['worker_errors']} errors, {row['time_limit_hits']} "
            f"Celery time-limit hits (soft limit: "
            f"{args.task_time_limit or 'the product setting'} s; see "
            f"bench/out/billing-worker*-{args.run_id}.log)"
        )
    return 0 if row["exact"] else 1


# --- subscribe over HTTP (phase 1 PUT customers, phase 2 POST subscriptions) ---------------


def _request(args, method: str, path: str, body: dict, headers: dict) -> tuple[int, float]:
    payload = json.dumps(body).encode()
    began = time.perf_counter()
    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
    try:
        conn.request(
            method,
            path,
            body=payload,
            headers={
                "Authorization": f"Api-Key {args.key}",
                "Content-Type": "application/json",
                **headers,
            },
        )
        response = conn.getresponse()
        response.read()
        status = response.status
    finally:
        conn.close()
    return status, time.perf_counter() - began


def _phase(args, calls: list[tuple[str, str, dict, dict]]) -> dict:
    lock = threading.Lock()
    cursor = iter(range(len(calls)))
    latencies: list[float] = []
    statuses: Counter = Counter()

    def work() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            try:
                status, seconds = _request(args, *calls[i])
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    statuses[type(exc).__name__] += 1
                continue
            with lock:
                statuses[str(status)] += 1
                latencies.append(seconds * 1000)

    threads = [threading.Thread(target=work) for _ in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(calls),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1) if wall else None,
        "p50_ms": round(percentile(latencies, 0.50) or 0, 2),
        "p95_ms": round(percentile(latencies, 0.95) or 0, 2),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "status": dict(sorted(statuses.items())),
    }


def subscribe(args) -> int:
    _django()
    from django.db import connection

    plan = plan_get()
    tag = f"{PREFIX}http-{args.run_id}-"

    def calls(i0: int, count: int, label: str):
        ids = [f"{tag}{label}{i}" for i in range(i0, i0 + count)]
        puts = [
            ("PUT", f"/api/v1/billing/customers/{cid}", {"payment_method": "pm_card_visa"}, {})
            for cid in ids
        ]
        posts = [
            (
                "POST",
                "/api/v1/billing/subscriptions",
                {"customer_id": cid, "plan": PLAN, "trial": False},
                {"Idempotency-Key": f"{cid}-sub"},
            )
            for cid in ids
        ]
        return puts, posts

    # Warm every gunicorn worker (imports, pool connection, API key cache), untimed.
    warm_puts, warm_posts = calls(0, args.concurrency * 5, "w")
    _phase(args, warm_puts)
    _phase(args, warm_posts)
    puts, posts = calls(0, args.requests, "")
    mark = cpu_mark()
    put = _phase(args, puts)
    put_busy = cpu_busy_since(mark)
    mark = cpu_mark()
    sub = _phase(args, posts)
    sub_busy = cpu_busy_since(mark)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT s.id), count(i.id) FILTER (WHERE i.status = 'paid') "
            "FROM billing_subscription s JOIN billing_billingcustomer c ON c.id = s.customer_id "
            "LEFT JOIN billing_invoice i ON i.subscription_id = s.id "
            "AND i.billing_reason = 'subscription_create' "
            "WHERE c.customer_id LIKE %s AND c.customer_id NOT LIKE %s AND s.plan_id = %s "
            "AND s.status = 'active'",
            [tag + "%", tag + "w%", plan.pk],
        )
        active, paid = cursor.fetchone()
    created = sub["status"].get("201", 0)
    ok = active == paid == created == args.requests
    row = {
        "kind": "billing_subscribe",
        "run_id": args.run_id,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "background_busy_pct": args.background_busy,
        "cpu_busy_pct": sub_busy,
        **sub,
        "put": {**put, "cpu_busy_pct": put_busy},
        "active_subscriptions": active,
        "paid_first_invoices": paid,
        "ok": ok,
    }
    _emit(row, args.results)
    print(
        f"\nSubscribe over HTTP: {args.requests:,} new customers, {args.concurrency} client "
        f"threads, {args.workers} gunicorn sync workers, a new connection per request"
    )
    for label, r, busy in (
        ("PUT customer", put, put_busy),
        ("POST subscription", sub, sub_busy),
    ):
        print(
            f"  {label:<17} {r['requests_per_s']:>7.1f} req/s  p50 {r['p50_ms']:.1f} ms  "
            f"p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  max {r['max_ms']} ms  "
            f"statuses {r['status']}  (CPU {busy}%)"
        )
    print(
        f"  check: {active:,} active subscriptions, {paid:,} paid first invoices for "
        f"{created:,} HTTP 201s -> {'OK' if ok else 'MISMATCH'}"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ren = sub.add_parser("renewals")
    ren.add_argument("results", type=Path)
    ren.add_argument("--subs", type=int, default=100_000)
    ren.add_argument("--workers", type=int, default=2)
    ren.add_argument("--broker", default=DEFAULT_BROKER)
    ren.add_argument("--timeout", type=float, default=1800, help="give up after (s)")
    ren.add_argument("--stall", type=float, default=120, help="give up after no progress (s)")
    ren.add_argument("--progress-every", type=float, default=5)
    ren.add_argument("--background-busy", type=int, default=None)
    ren.add_argument(
        "--task-time-limit",
        type=int,
        default=None,
        help="the workers' soft time limit in s (default: the product's settings)",
    )
    ren.add_argument("--keep", action="store_true", help="leave the rows (to inspect them)")
    ren.add_argument("--run-id", default=time.strftime("%Y%m%d-%H%M%S"))
    http_ = sub.add_parser("subscribe")
    http_.add_argument("results", type=Path)
    http_.add_argument("--host", default="127.0.0.1")
    http_.add_argument("--port", type=int, required=True)
    http_.add_argument("--key", required=True)
    http_.add_argument("--requests", type=int, default=2000)
    http_.add_argument("--concurrency", type=int, default=8)
    http_.add_argument("--timeout", type=float, default=30)
    http_.add_argument("--workers", type=int, default=None, help="gunicorn workers (recorded)")
    http_.add_argument("--background-busy", type=int, default=None)
    http_.add_argument("--run-id", default=time.strftime("%Y%m%d-%H%M%S"))
    sub.add_parser("cleanup")
    args = parser.parse_args()
    if args.command == "renewals":
        return renewals(args)
    if args.command == "subscribe":
        return subscribe(args)
    _django()
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
