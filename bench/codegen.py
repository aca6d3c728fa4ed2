"""Bulk code generation benchmark: N codes (default 1,000,000) through the real Celery
task, next to the floor, a raw psycopg COPY of N random 12-letter strings into a bare
table with a unique index, in the same run on the same database.

    DJANGO_SETTINGS_MODULE=config.settings.bench DATABASE_URL=.../growth_bench \
        REDIS_URL=redis://127.0.0.1:6379/3 CELERY_BROKER_URL=redis://127.0.0.1:6379/4 \
        .venv/bin/python bench/codegen.py RESULTS.jsonl [--count 1000000] [--repeat 1]

(bench/codegen.sh sets all that up.) Steps:
  1. raw: CREATE a bare UNLOGGED-free table (code text) with a unique index, generate N
     strings and COPY them in one transaction: the time PostgreSQL needs for the rows.
  2. task: start `celery -A config worker` (prefork, one pool process, its own queue),
     create a coupon and a CodeBatch of N codes, send `codebatches.tasks.batch_generate`
     and time from the send to the batch being `done` (end to end: broker, task, every
     chunk's COPY + INSERT ... ON CONFLICT, the final count); the worker's pool process
     peak RSS (VmHWM from /proc) is read before it is stopped.
  3. check: N distinct codes of the format exist for the batch; then the bench rows are
     deleted so growth_bench does not grow run after run.
Results: a table on stdout, one {"kind": "codegen", ...} JSON line per repeat in RESULTS.
Exit status: 0 with numbers, 2 when it cannot set up, 1 on a wrong result.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from coupons.codebatches import codegen  # noqa: E402
from coupons.codebatches.models import CodeBatch  # noqa: E402
from coupons.models import Code, Coupon  # noqa: E402
from tests.faults.conftest import children_of  # noqa: E402

QUEUE = "codegen_bench"
PREFIX = "BENCH"


def proc_status(pid: int, field: str) -> int | None:
    """A kB value from /proc/<pid>/status (VmHWM = peak RSS, VmRSS = now)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def raw_copy(count: int) -> float:
    """Seconds to COPY `count` random 12-letter strings into a bare uniquely indexed
    table (the data is generated before the clock starts)."""
    payload = ("\n".join(codegen.random_codes("", 12, count)) + "\n").encode()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_codegen_raw")
        cursor.execute("CREATE TABLE bench_codegen_raw (code text NOT NULL)")
        cursor.execute("CREATE UNIQUE INDEX bench_codegen_raw_code ON bench_codegen_raw (code)")
        started = time.perf_counter()
        cursor.execute("BEGIN")
        with cursor.copy("COPY bench_codegen_raw (code) FROM STDIN") as copy:
            for start in range(0, len(payload), 1 << 20):
                copy.write(payload[start : start + (1 << 20)])
        cursor.execute("COMMIT")
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_codegen_raw")
        if cursor.fetchone()[0] != count:
            raise RuntimeError("the raw COPY lost rows")
        cursor.execute("DROP TABLE bench_codegen_raw")
    return elapsed


class Worker:
    def __init__(self, log_path: Path):
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
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
                QUEUE,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"codegen-bench-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery exited (see {self.log_path})")
            kids = children_of(self.proc.pid)
            if " ready." in self.log_path.read_text(errors="replace") and len(kids) == 1:
                return kids[0]
            time.sleep(0.2)
        raise RuntimeError(f"celery not ready in {timeout}s (see {self.log_path})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def run_task(count: int, pool_pid: int, sender: Celery) -> dict:
    coupon, _ = Coupon.objects.get_or_create(
        code="BENCHGEN",
        defaults={"type": "percentage", "percent_bp": 1000, "description": "bench/codegen.py"},
    )
    batch = CodeBatch.objects.create(coupon=coupon, prefix=PREFIX, requested=count)
    rss_before = proc_status(pool_pid, "VmRSS")
    started = time.perf_counter()
    sender.send_task("codebatches.tasks.batch_generate", args=[str(batch.pk)], queue=QUEUE)
    while True:
        batch.refresh_from_db(fields=["status", "generated"])
        if batch.status != CodeBatch.Status.GENERATING:
            break
        if time.perf_counter() - started > 600:
            raise RuntimeError("the batch did not finish in 600 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    peak = proc_status(pool_pid, "VmHWM")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT code), "
            "count(*) FILTER (WHERE code !~ %s) FROM coupons_code WHERE batch_id = %s",
            [rf"^{PREFIX}[0-9A-HJKMNP-TV-Z]{{12}}$", batch.pk],
        )
        rows, distinct, malformed = cursor.fetchone()
    ok = batch.status == "done" and rows == distinct == count and malformed == 0
    return {
        "batch_id": str(batch.pk),
        "status": batch.status,
        "seconds": round(elapsed, 3),
        "rows": rows,
        "distinct": distinct,
        "malformed": malformed,
        "ok": ok,
        "worker_rss_before_mb": round((rss_before or 0) / 1024, 1),
        "worker_peak_rss_mb": round((peak or 0) / 1024, 1),
    }


def cleanup() -> None:
    """Remove the bench's batches and their codes (growth_bench stays its size)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM coupons_code WHERE batch_id IN (SELECT b.id FROM "
            "codebatches_codebatch b JOIN coupons_coupon c ON c.id = b.coupon_id "
            "WHERE c.code = 'BENCHGEN')"
        )
        cursor.execute(
            "DELETE FROM codebatches_codebatch WHERE coupon_id IN "
            "(SELECT id FROM coupons_coupon WHERE code = 'BENCHGEN')"
        )
    Code.objects.filter(coupon__code="BENCHGEN", batch__isnull=True).delete()
    # A million deleted rows leave the table and its six indexes bloated; without this
    # every later run inserts into gigabytes of dead pages (measured: 3.2 GB for 101,006
    # live rows, 25 s instead of 15 s). A real deployment does not delete a batch a run.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) coupons_code")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--run-id", default=time.strftime("%Y%m%d-%H%M%S"))
    args = parser.parse_args()
    db_name = settings.DATABASES["default"]["NAME"]
    if "bench" not in db_name:
        print(
            f"refusing to run against {db_name!r}: use the growth_bench database", file=sys.stderr
        )
        return 2
    cleanup()
    log_path = ROOT / "bench" / "out" / f"codegen-worker-{args.run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = Worker(log_path)
    sender = Celery("codegen-bench", broker=settings.CELERY_BROKER_URL)
    rows = []
    failed = False
    try:
        try:
            pool_pid = worker.wait_ready()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        for i in range(args.repeat):
            raw = raw_copy(args.count)
            task = run_task(args.count, pool_pid, sender)
            cleanup()
            row = {
                "kind": "codegen",
                "run_id": args.run_id,
                "repeat": i + 1,
                "count": args.count,
                "raw_copy_s": round(raw, 3),
                "task_s": task["seconds"],
                "ratio": round(task["seconds"] / raw, 2),
                "codes_per_s": round(args.count / task["seconds"]),
                **{k: v for k, v in task.items() if k != "seconds"},
            }
            failed |= not task["ok"]
            rows.append(row)
            with open(args.results, "a") as out:
                out.write(json.dumps(row) + "\n")
    finally:
        sender.close()
        worker.stop()
        cleanup()
    print(
        f"\nBulk code generation: {args.count:,} codes "
        f"(target: < 10 s, within 2x of the raw COPY, worker peak < 200 MB)"
    )
    print(
        f"{'run':>3}  {'raw COPY s':>10}  {'task s':>7}  {'ratio':>5}  {'codes/s':>9}  "
        f"{'worker peak MB':>14}  result"
    )
    for r in rows:
        verdict = "OK" if r["ok"] else f"WRONG ({r['rows']} rows, {r['distinct']} distinct)"
        print(
            f"{r['repeat']:>3}  {r['raw_copy_s']:>10.2f}  {r['task_s']:>7.2f}  "
            f"{r['ratio']:>5.2f}  {r['codes_per_s']:>9,}  {r['worker_peak_rss_mb']:>14.1f}  "
            f"{verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
