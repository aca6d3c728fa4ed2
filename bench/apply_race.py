"""The hot-coupon race over HTTP: exactly N apply calls for one code from C concurrent
connections, each with its own order, Idempotency-Key and customer.

Prints one JSON line: counts by status, the wall time of all calls, the time until the
last `200` (the sell-out), the redemption rate `ok / sell_out_s`, and latency
percentiles. All threads wait for one start signal, so the calls really overlap.

    python bench/apply_race.py --port 8088 --key KEY --code HOT1000 --requests 1500
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter


def cart_json() -> str:
    """The 20-line cart of bench/cart.lua, byte for byte."""
    categories = ["electronics", "home", "apparel", "grocery"]
    items = [
        f'{{"sku":"SKU-{i}","category":"{categories[i % 4]}",'
        f'"unit_price":"{5 + i * 3}.{(i * 17) % 100:02d}","quantity":{1 + i % 3}}}'
        for i in range(1, 21)
    ]
    return '{"currency":"USD","items":[' + ",".join(items) + '],"shipping":"7.99"}'


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--key", required=True)
    parser.add_argument("--code", default="HOT1000")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--run-id", default=str(int(time.time())))
    parser.add_argument("--timeout", type=float, default=30.0, help="per request")
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="send no new request after this many seconds"
    )
    parser.add_argument("--workers", type=int, default=None, help="label: gunicorn workers")
    parser.add_argument("--out", default=None, help="append the JSON line to this file")
    args = parser.parse_args()

    cart = cart_json()
    headers = {"Authorization": f"Api-Key {args.key}", "Content-Type": "application/json"}
    lock = threading.Lock()
    next_index = iter(range(args.requests))
    results: list[tuple[int, float, float]] = []  # (status, finished_at, latency)
    errors: Counter = Counter()
    go = threading.Event()
    start = [0.0]

    def work() -> None:
        go.wait()
        while True:
            with lock:
                n = next(next_index, None)
            if n is None or time.perf_counter() - start[0] > args.deadline:
                return
            tag = f"{args.run_id}-{n}"
            body = (
                f'{{"coupon_code":"{args.code}","customer":{{"id":"hot-{tag}"}},'
                f'"order_id":"o-{tag}","cart":{cart}}}'
            )
            began = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                conn.request(
                    "POST",
                    "/api/v1/coupons/apply",
                    body=body,
                    headers={**headers, "Idempotency-Key": f"k-{tag}"},
                )
                response = conn.getresponse()
                response.read()
                status = response.status
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                continue
            ended = time.perf_counter()
            with lock:
                results.append((status, ended - start[0], ended - began))

    threads = [threading.Thread(target=work) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    start[0] = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start[0]

    statuses = Counter(status for status, _, _ in results)
    ok_times = [t for status, t, _ in results if status == 200]
    sell_out = max(ok_times) if ok_times else float("nan")
    latencies = [lat * 1000 for _, _, lat in results]
    ok_latencies = [lat * 1000 for status, _, lat in results if status == 200]
    report = {
        "kind": "apply",
        "workers": args.workers,
        "code": args.code,
        "requests": args.requests,
        "sent": len(results) + sum(errors.values()),
        "concurrency": args.concurrency,
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "transport_errors": dict(errors),
        "ok": statuses.get(200, 0),
        "rejected_422": statuses.get(422, 0),
        "wall_s": round(wall, 3),
        "sell_out_s": round(sell_out, 3),
        "redemptions_per_s": round(len(ok_times) / sell_out, 1) if ok_times else 0.0,
        "requests_per_s": round(len(results) / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "ok_p50_ms": round(percentile(ok_latencies, 0.50), 2),
        "ok_p99_ms": round(percentile(ok_latencies, 0.99), 2),
    }
    line = json.dumps(report)
    print(line)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
