"""Flash-sale claims over HTTP: N claim requests from C retrying customers for U units.

    python bench/claims.py setup --units 1000            # Django: a live campaign, prints id
    python bench/claims.py load --campaign ID --key KEY  # HTTP only: the load, one JSON line
    python bench/claims.py check --campaign ID           # Django: claims in PostgreSQL, verdict

The load: request i (0..N-1) is customer `i % customers`, so with the defaults every one
of 2,000 customers sends 5 claims spread over the run (a retry, a refresh, a second tab),
each with a fresh Idempotency-Key (a new click is a new request; a replayed key would
answer from the idempotency table and never reach the claim). The requests are shared
by P client processes with T threads each, all released at one start time; each request
opens its own connection (gunicorn's sync workers close after every response).
Latency is measured per request from connect to the last byte of the response.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from collections import Counter

BENCH_CAMPAIGN_NAME = "bench: flash-sale claims"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- Django parts -------------------------------------------------------------------------


def _django():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    import django

    django.setup()


def setup(args) -> None:
    """Remove earlier bench campaigns (claims, tokens, coupons), create a live one."""
    _django()
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from coupons.campaigns import services
    from coupons.campaigns.models import Campaign, Claim
    from coupons.models import Code, Coupon

    with transaction.atomic():
        old = list(Campaign.objects.filter(name=BENCH_CAMPAIGN_NAME))
        coupons = [c.coupon_id for c in old]
        Claim.objects.filter(campaign__in=old).delete()
        Code.objects.filter(coupon_id__in=coupons).delete()
        Campaign.objects.filter(pk__in=[c.pk for c in old]).delete()
        Coupon.objects.filter(pk__in=coupons).delete()
    now = timezone.now()
    campaign = services.campaign_create(
        name=BENCH_CAMPAIGN_NAME,
        inventory=args.units,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        claim_hold_minutes=15,
        discount={"type": "percentage", "percent_bp": 2000, "currency": "USD"},
    )
    print(campaign.pk)


def check(args) -> None:
    """Exactly `units` distinct claims, one per customer, and the counter agreeing."""
    _django()
    from coupons.campaigns.models import Campaign, Claim

    campaign = Campaign.objects.get(pk=args.campaign)
    claims = Claim.objects.filter(campaign=campaign)
    n = claims.count()
    customers = claims.values("customer").distinct().count()
    tokens = claims.values("code").distinct().count()
    exact = n == customers == tokens == campaign.claimed == campaign.inventory
    row = {
        "kind": "claims_check",
        "claims": n,
        "distinct_customers": customers,
        "distinct_tokens": tokens,
        "claimed": campaign.claimed,
        "inventory": campaign.inventory,
        "verdict": "EXACT" if exact else "MISMATCH",
    }
    if args.load_line:
        load = json.loads(args.load_line)
        row["http_201"] = load.get("status", {}).get("201", 0)
        row["http_201_matches"] = row["http_201"] == n
        exact = exact and row["http_201_matches"]
        row["verdict"] = "EXACT" if exact else "MISMATCH"
    _emit(row, args.out)
    sys.exit(0 if exact else 1)


def _emit(row: dict, out: str | None) -> None:
    line = json.dumps(row)
    print(line)
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")


# --- the HTTP load (no Django) ------------------------------------------------------------


def _request_bytes(args, i: int) -> bytes:
    body = json.dumps({"user_id": f"bc-{i % args.customers}"}).encode()
    head = (
        f"POST /api/v1/campaigns/{args.campaign}/claim HTTP/1.1\r\n"
        f"Host: {args.host}:{args.port}\r\n"
        f"Authorization: Api-Key {args.key}\r\n"
        f"Idempotency-Key: claim-{args.run_id}-{i}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _send(args, payload: bytes) -> tuple[int, bytes]:
    with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    status = int(data[9:12])
    return status, data[data.find(b"\r\n\r\n") + 4 :]


def _client_process(args, part: int, start_at: float, queue) -> None:
    indexes = list(range(part, args.requests, args.processes))
    payloads = [_request_bytes(args, i) for i in indexes]
    lock = threading.Lock()
    cursor = iter(range(len(payloads)))
    results: list[tuple[int, float, float, str]] = []  # status, end, latency, claim id
    errors: Counter = Counter()

    def work() -> None:
        while time.time() < start_at:
            time.sleep(0.0005)
        while True:
            with lock:
                n = next(cursor, None)
            if n is None:
                return
            began = time.perf_counter()
            try:
                status, body = _send(args, payloads[n])
            except (OSError, ValueError) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                continue
            ended = time.perf_counter()
            claim_id = ""
            if status in (200, 201):
                claim_id = json.loads(body).get("claim_id", "")
            with lock:
                results.append((status, time.time(), ended - began, claim_id))

    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((results, dict(errors)))


def load(args) -> None:
    start_at = time.time() + 1.0  # every process has built its requests by then
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_client_process, args=(args, p, start_at, queue))
        for p in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    results, errors = [], Counter()
    for _ in procs:
        part, errs = queue.get()
        results.extend(part)
        errors.update(errs)
    for proc in procs:
        proc.join()
    wall = max(end for _, end, _, _ in results) - start_at if results else float("nan")
    statuses = Counter(status for status, _, _, _ in results)
    latencies = [lat * 1000 for _, _, lat, _ in results]
    claim_ids = {cid for status, _, _, cid in results if cid}
    row = {
        "kind": "claims_load",
        "run_id": args.run_id,
        "workers": args.workers,
        "background_busy_pct": args.background_busy,
        "requests": args.requests,
        "customers": args.customers,
        "completed": len(results),
        "transport_errors": dict(errors),
        "clients": args.processes * args.threads,
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "distinct_claims_seen": len(claim_ids),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(results) / wall, 1) if results else 0.0,
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p90_ms": round(percentile(latencies, 0.90), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }
    _emit(row, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--units", type=int, default=1000)
    c = sub.add_parser("check")
    c.add_argument("--campaign", required=True)
    c.add_argument("--load-line", default="", help="the load's JSON line (to compare 201s)")
    c.add_argument("--out", default=None)
    ld = sub.add_parser("load")
    ld.add_argument("--campaign", required=True)
    ld.add_argument("--key", required=True)
    ld.add_argument("--host", default="127.0.0.1")
    ld.add_argument("--port", type=int, default=8089)
    ld.add_argument("--requests", type=int, default=10_000)
    ld.add_argument("--customers", type=int, default=2_000)
    ld.add_argument("--processes", type=int, default=2)
    ld.add_argument("--threads", type=int, default=16, help="per process")
    ld.add_argument("--timeout", type=float, default=30.0)
    ld.add_argument("--workers", type=int, default=None, help="label: gunicorn workers")
    ld.add_argument("--run-id", default=str(int(time.time())))
    ld.add_argument(
        "--background-busy",
        type=int,
        default=None,
        help="label: machine CPU busy %% just before the run",
    )
    ld.add_argument("--out", default=None)
    args = parser.parse_args()
    {"setup": setup, "check": check, "load": load}[args.cmd](args)


if __name__ == "__main__":
    main()
