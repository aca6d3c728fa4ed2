"""Open-loop load on POST /api/v1/promotions/evaluate at a fixed rate (bench/run.sh).

wrk has no rate limit and a closed loop hides stalls (a slow response delays the next
request, so the stall is counted once). Here request k is due at start + k / rate
whatever happened before; a few threads, each with its own keep-alive connection, take
the next due request, wait for its time, send it and read the answer. Latency is
measured from the time the request was *due*, so a server stall, a full client or a
late thread all show up in the numbers (no coordinated omission). Requests not sent
within --grace seconds after the run's end are counted as dropped.

gunicorn's sync workers answer `Connection: close`, so http.client reconnects for each
request there; the connect is part of the latency, as it is for every client of them.

    .venv/bin/python bench/promotions_http.py --port 8088 --key KEY --rate 200 \
        --duration 15 [--ramp "300 400 600"] [--out RESULTS.jsonl]

The request: bench/promotions_cart.py (20 lines, 3 typed codes, a random seeded
customer). An error is anything but a 200 whose body is the evaluation. Appends
{"kind": "promo_http", ...} rows to --out. Exit 0 whatever the numbers are; 2 when the
server does not answer the first request properly (cannot set up).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import promotions_cart
from bench.machine import cpu_busy_since, cpu_mark


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[max(0, min(len(sorted_values) - 1, math.ceil(p * len(sorted_values)) - 1))]


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # fields after "pid (comm)"
    except OSError:
        return None


def server_pids(master: int | None) -> list[int]:
    """The gunicorn master and its workers."""
    if not master:
        return []
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[1] == str(master):  # field 4: ppid
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (fields 14 and 15), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self, port: int, key: str, server_pid: int | None = None):
        self.server_pid = server_pid
        self.port = port
        self.headers = {
            "Authorization": f"Api-Key {key}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        self.prefix, self.suffix = promotions_cart.body_parts()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def send(self, conn: http.client.HTTPConnection, rng: random.Random) -> tuple:
        """-> (status or error name, body ok, connection to use next)."""
        payload = self.prefix + promotions_cart.customer_id(rng).encode() + self.suffix
        try:
            conn.request("POST", promotions_cart.PATH, body=payload, headers=self.headers)
            response = conn.getresponse()
            data = response.read()
            if response.will_close:
                conn.close()  # http.client opens a new one on the next request
            ok = response.status == 200 and b'"stacking_policy"' in data
            return response.status, ok, conn, data
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return type(exc).__name__, False, self.connection(), b""

    def run(self, rate: float, duration: float, threads: int, grace: float) -> dict:
        """Offer `rate` requests/s for `duration` s; -> stats."""
        count = int(rate * duration)
        lock = threading.Lock()
        state = {"next": 0}
        records: list[tuple] = []  # (due, sent, done, status, ok)
        start = time.perf_counter() + 0.05
        cutoff = start + duration + grace

        def worker(seed: int) -> None:
            rng = random.Random(seed)  # noqa: S311 - customer ids for load, not security
            conn = self.connection()
            local = []
            while True:
                with lock:
                    k = state["next"]
                    state["next"] += 1
                if k >= count:
                    break
                due = start + k / rate
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                elif now > cutoff:
                    continue  # dropped: counted as count - len(records)
                sent = time.perf_counter()
                status, ok, conn, _ = self.send(conn, rng)
                local.append((due, sent, time.perf_counter(), status, ok))
            conn.close()
            with lock:
                records.extend(local)

        mark = cpu_mark()
        servers = server_pids(self.server_pid)
        server0 = cpu_seconds(servers)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = cpu_seconds(servers) - server0
        busy = cpu_busy_since(mark)
        records.sort()
        latency = sorted((done - due) * 1000 for due, _, done, _, _ in records)
        service = sorted((done - sent) * 1000 for _, sent, done, _, _ in records)
        late = sorted((sent - due) * 1000 for due, sent, _, _, _ in records)
        errors: dict[str, int] = {}
        for *_, status, ok in records:
            if not ok:
                errors[str(status)] = errors.get(str(status), 0) + 1
        ok_count = sum(1 for r in records if r[4])
        last = max((r[2] for r in records), default=start)
        client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return {
            "offered_rps": rate,
            "duration_s": duration,
            "threads": threads,
            "scheduled": count,
            "sent": len(records),
            "dropped": count - len(records),
            "ok": ok_count,
            "errors": sum(errors.values()),
            "error_kinds": errors,
            "achieved_rps": round(ok_count / max(last - start, 1e-9), 1),
            "p50_ms": r2(pct(latency, 0.50)),
            "p90_ms": r2(pct(latency, 0.90)),
            "p99_ms": r2(pct(latency, 0.99)),
            "max_ms": r2(latency[-1] if latency else None),
            "service_p50_ms": r2(pct(service, 0.50)),
            "service_p99_ms": r2(pct(service, 0.99)),
            "late_p99_ms": r2(pct(late, 0.99)),
            "client_cpu_ms_per_req": r2(client_cpu * 1000 / max(len(records), 1)),
            "server_cpu_ms_per_req": r2(server_cpu * 1000 / max(len(records), 1))
            if servers
            else None,
            "cpu_busy_pct": busy,
        }


def r2(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def line(stats: dict) -> str:
    errs = stats["errors"] + stats["dropped"]
    return (
        f"{stats['offered_rps']:>7.0f} {stats['achieved_rps']:>8.0f} {stats['sent']:>6} "
        f"{fmt(stats['p50_ms'])} {fmt(stats['p90_ms'])} {fmt(stats['p99_ms'])} "
        f"{fmt(stats['max_ms'], 8)} {fmt(stats['service_p99_ms'])} {errs:>6} "
        f"{fmt(stats['server_cpu_ms_per_req'], 6)} {stats['cpu_busy_pct']:>3}%"
    )


def fmt(value, width: int = 7) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


HEAD = (
    f"{'offered':>7} {'achieved':>8} {'sent':>6} {'p50 ms':>7} {'p90 ms':>7} "
    f"{'p99 ms':>7} {'max ms':>8} {'svc p99':>7} {'errors':>6} {'srv ms':>6} {'CPU':>4}"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds at --rate first, not recorded (every worker builds its catalog and caches)",
    )
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument(
        "--ramp",
        default="",
        help="offered rates after the fixed run, "
        'e.g. "300 400 600": each for --stage s, until one is not sustained',
    )
    parser.add_argument("--stage", type=float, default=5.0)
    parser.add_argument("--target-p99", type=float, default=15.0)
    parser.add_argument("--n", type=int, default=None, help="promotions seeded (recorded)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (recorded)")
    parser.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="gunicorn master: its and its workers' CPU per request",
    )
    parser.add_argument("--background-busy", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    client = Client(args.port, args.key, args.server_pid)

    conn = client.connection()
    status, ok, conn, data = client.send(conn, random.Random(0))  # noqa: S311
    conn.close()
    if not ok:
        print(
            f"promotions over HTTP: cannot set up: first answer {status}: {data[:300]!r}",
            file=sys.stderr,
        )
        return 2
    body = json.loads(data)
    auto = [a["code"] for a in body["applied"] if a["auto"]]
    typed = [a["code"] for a in body["applied"] if not a["auto"]]
    print(
        f"  POST {promotions_cart.PATH}: {len(body['applied'])} applied ({len(auto)} auto, "
        f"typed {' '.join(typed) or '-'}), {len(body['not_applied'])} not applied, "
        f"{len(body['rejected'])} typed rejected; discount {body['discount']} + shipping "
        f"{body['shipping_discount']}; response {len(data):,} bytes"
    )

    common = {
        "n": args.n,
        "workers": args.workers,
        "background_busy_pct": args.background_busy,
        "response_bytes": len(data),
    }
    rows = []
    client.run(args.rate, args.warmup, args.threads, args.grace)
    print(
        f"  open loop, latency from each request's due time; {args.threads} client threads; "
        f"svc = from send; srv ms = gunicorn CPU per request"
    )
    print("  " + HEAD)
    fixed = client.run(args.rate, args.duration, args.threads, args.grace)
    print("  " + line(fixed) + "   fixed rate", flush=True)
    rows.append({"kind": "promo_http", "stage": "fixed", **common, **fixed})

    rates = [float(x) for x in args.ramp.split()]
    threads = max(args.threads, 16)
    for rate in rates:
        stats = client.run(rate, args.stage, threads, args.grace)
        sustained = (
            stats["errors"] == 0
            and stats["dropped"] == 0
            and stats["achieved_rps"] >= 0.95 * rate
            and (stats["p99_ms"] or 1e9) < 200
        )
        stats["sustained"] = sustained
        print(
            "  " + line(stats) + f"   ramp: {'sustained' if sustained else 'NOT sustained'}",
            flush=True,
        )
        rows.append({"kind": "promo_http", "stage": "ramp", **common, **stats})
        if not sustained:
            break
    ramp = [r for r in rows if r["stage"] == "ramp"]
    if ramp:
        held = [r["offered_rps"] for r in ramp if r["sustained"]]
        fast = [
            r["offered_rps"]
            for r in ramp + rows[:1]
            if r["errors"] == 0 and (r["p99_ms"] or 1e9) < args.target_p99
        ]
        print(
            f"  highest rate sustained: {max(held):.0f}/s"
            if held
            else "  no ramp rate was sustained",
            end="",
        )
        print(
            f"; highest with p99 < {args.target_p99:g} ms: {max(fast):.0f}/s"
            if fast
            else f"; none with p99 < {args.target_p99:g} ms"
        )
        print(
            "  (sustained: no errors or dropped requests, >= 95% of the offered rate "
            "answered, p99 < 200 ms)"
        )
    if args.out:
        with open(args.out, "a") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
