"""`make load`: the storefront's checkout mix against gunicorn (bench/load/run.sh starts it).

Each simulated shopper loops without think time (a closed loop: the offered load is as
high as the server answers) over three tasks, picked by weight:

- 80  validate                 POST /api/v1/coupons/validate
- 15  apply, then confirm      POST /api/v1/coupons/apply, POST /api/v1/orders/{id}/confirm
-  5  apply, then release      POST /api/v1/coupons/apply, POST /api/v1/orders/{id}/release

so 100 tasks send 120 requests: 80 validate, 20 apply, 15 confirm and 5 release (a
follow-up only when the apply returned 200). Every apply has its own order_id and
Idempotency-Key.

What counts as an error (a locust "failure"): a 5xx, a socket error, any status or body
the contract does not allow for that call. Business answers are successes and are counted
separately: validate's `200 {"valid": false, "reason": ...}` and apply's
`422 usage_limit_reached` / `422 customer_limit_reached`.

When the run stops (locust --stop-timeout lets every shopper finish its task, so no
apply is cut off between its request and its bookkeeping), this process writes, under
LOAD_OUT:

- client-<run>-<pid>.tsv   one line per apply that got a 200 or whose outcome is unknown:
                           order_id, code, customer, expected state (reserved | confirmed
                           | released | unknown ...); bench/load/check.py compares it with
                           PostgreSQL row by row
- client-<run>-<pid>.json  outcome counters per endpoint, the time LIMIT500 sold out,
                           this process's own CPU time (locust shares the 2 cores)
- locust-<run>_final_stats.csv / _final_failures.csv
                           locust's own CSV rows, written once every request is counted
                           (the --csv files are rewritten every second and not at the
                           end, so they miss the last second or so of the run)

Environment: LOAD_API_KEY (storefront key, required), LOAD_RUN_ID, LOAD_OUT (bench/load/out).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import resource
import time
from collections import Counter, defaultdict

from locust import FastHttpUser, constant, events, task
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

API_KEY = os.environ.get("LOAD_API_KEY", "")
RUN_ID = os.environ.get("LOAD_RUN_ID", str(int(time.time())))
OUT = os.environ.get("LOAD_OUT", "bench/load/out")

BUSINESS_422 = ("usage_limit_reached", "customer_limit_reached")

# Customers: a store's returning shoppers for most calls, and a small pool for the
# once-per-customer coupon so that repeats really meet the per-customer limit.
CUSTOMERS = 20_000
ONCE_POOL = 500

# Which code a call uses (cumulative weights).
VALIDATE_CODES = [("LOAD25", 40), ("LOAD10", 30), ("LIMIT500", 15), ("ONCE1", 15)]
APPLY_CODES = [("LOAD10", 50), ("LIMIT500", 35), ("ONCE1", 15)]


def _cart_pool(n: int = 200) -> list[str]:
    """n realistic carts (1-6 lines from a 500-SKU catalogue), pre-serialised so the load
    generator spends its CPU on sending, not on json.dumps."""
    rng = random.Random(42)  # noqa: S311 - test data, not security
    categories = ["electronics", "home", "apparel", "grocery", "books", "toys"]
    catalogue = [
        (
            f"SKU-{i}",
            categories[i % len(categories)],
            f"{rng.randint(3, 180)}.{rng.randint(0, 99):02d}",
        )
        for i in range(1, 501)
    ]
    carts = []
    for _ in range(n):
        lines = rng.sample(catalogue, rng.randint(1, 6))
        items = ",".join(
            f'{{"sku":"{sku}","category":"{cat}","unit_price":"{price}",'
            f'"quantity":{rng.choice((1, 1, 1, 2, 3))}}}'
            for sku, cat, price in lines
        )
        carts.append(f'{{"currency":"USD","shipping":"7.99","items":[{items}]}}')
    return carts


CARTS = _cart_pool()
_rng = random.Random()  # noqa: S311 - picks for load generation, not security
_order_seq = itertools.count(1)
PID = os.getpid()

# Bookkeeping of this process (one locust process; with --processes each writes its own).
outcomes: dict[str, Counter] = defaultdict(Counter)  # endpoint -> outcome label -> n
orders: dict[str, list[str]] = {}  # order_id -> [code, customer, state]
marks: dict[str, float] = {}
cpu_start: list[float] = []


def _pick(weighted: list[tuple[str, int]]) -> str:
    return _rng.choices([c for c, _ in weighted], [w for _, w in weighted])[0]


def _customer(code: str) -> str:
    if code == "ONCE1":
        return f"lo-{_rng.randint(1, ONCE_POOL)}"
    return f"lc-{_rng.randint(1, CUSTOMERS)}"


def _reason(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"{}").get("reason") or "no_reason")
    except (ValueError, AttributeError):
        return "unparseable_body"


def _transport_label(response) -> str:
    error = getattr(response, "error", None)
    return f"socket:{type(error).__name__}" if error is not None else "socket:unknown"


class Shopper(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 10.0
    connection_timeout = 5.0
    max_retries = 0  # never resend a POST behind our back

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Api-Key {API_KEY}", "Content-Type": "application/json"}

    # --- tasks -------------------------------------------------------------------------

    @task(80)
    def validate(self) -> None:
        code = _pick(VALIDATE_CODES)
        body = (
            f'{{"coupon_code":"{code}","customer":{{"id":"{_customer(code)}"}},'
            f'"cart":{_rng.choice(CARTS)}}}'
        )
        with self.client.post(
            "/api/v1/coupons/validate",
            data=body,
            headers=self.headers,
            name="validate",
            catch_response=True,
        ) as response:
            status = response.status_code
            content = response.content or b""
            if status == 200 and b'"valid":true' in content:
                outcomes["validate"]["200 valid"] += 1
                response.success()
            elif status == 200 and b'"valid":false' in content:
                # A business answer (sold out, once per customer): not an error.
                outcomes["validate"][f"200 invalid:{_reason(content)}"] += 1
                response.success()
            elif status == 0:
                outcomes["validate"][_transport_label(response)] += 1
                response.failure(_transport_label(response))
            else:
                outcomes["validate"][f"{status} unexpected"] += 1
                response.failure(f"HTTP {status}")

    @task(15)
    def apply_and_confirm(self) -> None:
        order_id = self._apply()
        if order_id is not None:
            self._follow_up(order_id, "confirm", "confirmed")

    @task(5)
    def apply_and_release(self) -> None:
        order_id = self._apply()
        if order_id is not None:
            self._follow_up(order_id, "release", "released")

    # --- steps -------------------------------------------------------------------------

    def _apply(self) -> str | None:
        """Apply one code to a new order; the order id when it was applied (200)."""
        code = _pick(APPLY_CODES)
        customer = _customer(code)
        n = next(_order_seq)
        order_id = f"L{RUN_ID}-{PID}-{n}"
        body = (
            f'{{"coupon_code":"{code}","customer":{{"id":"{customer}"}},'
            f'"order_id":"{order_id}","cart":{_rng.choice(CARTS)}}}'
        )
        headers = {**self.headers, "Idempotency-Key": f"k-{order_id}"}
        with self.client.post(
            "/api/v1/coupons/apply", data=body, headers=headers, name="apply", catch_response=True
        ) as response:
            status = response.status_code
            content = response.content or b""
            if status == 200 and b'"applied":true' in content:
                outcomes["apply"][f"200 {code}"] += 1
                orders[order_id] = [code, customer, "reserved"]
                response.success()
                return order_id
            if status == 422:
                reason = _reason(content)
                if reason in BUSINESS_422:
                    outcomes["apply"][f"422 {reason} {code}"] += 1
                    if code == "LIMIT500" and reason == "usage_limit_reached":
                        marks.setdefault(
                            "limit500_first_sold_out_s",
                            time.time() - marks.get("start", time.time()),
                        )
                    response.success()
                    return None
                outcomes["apply"][f"422 unexpected:{reason}"] += 1
                response.failure(f"422 {reason}")
                return None
            # Anything else is an error; the server may or may not have reserved (a socket
            # error after the commit): check.py treats such orders as "unknown".
            orders[order_id] = [code, customer, "unknown-apply"]
            label = _transport_label(response) if status == 0 else f"{status} unexpected"
            outcomes["apply"][label] += 1
            response.failure(label if status == 0 else f"HTTP {status}")
            return None

    def _follow_up(self, order_id: str, action: str, new_state: str) -> None:
        with self.client.post(
            f"/api/v1/orders/{order_id}/{action}",
            headers=self.headers,
            name=action,
            catch_response=True,
        ) as response:
            status = response.status_code
            content = response.content or b""
            if status == 200 and f'"status":"{new_state}"'.encode() in content:
                outcomes[action]["200"] += 1
                orders[order_id][2] = new_state
                response.success()
                return
            orders[order_id][2] = f"unknown-{action}"
            label = _transport_label(response) if status == 0 else f"{status} unexpected"
            outcomes[action][label] += 1
            response.failure(label if status == 0 else f"HTTP {status}")


# --- run bookkeeping ------------------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@events.test_start.add_listener
def _on_start(environment, **_kwargs) -> None:
    if not API_KEY:
        raise SystemExit("LOAD_API_KEY is not set (bench/load/run.sh creates one)")
    marks["start"] = time.time()
    cpu_start.append(_cpu_seconds())


@events.test_stop.add_listener
def _on_stop(environment, **_kwargs) -> None:
    if not marks.get("start"):
        return
    os.makedirs(OUT, exist_ok=True)
    stem = os.path.join(OUT, f"client-{RUN_ID}-{PID}")
    with open(stem + ".tsv", "w") as fh:
        for order_id, (code, customer, state) in orders.items():
            fh.write(f"{order_id}\t{code}\t{customer}\t{state}\n")
    wall = time.time() - marks["start"]
    summary = {
        "pid": PID,
        "wall_s": round(wall, 3),
        "cpu_s": round(_cpu_seconds() - (cpu_start[0] if cpu_start else 0.0), 3),
        "limit500_first_sold_out_s": (
            round(marks["limit500_first_sold_out_s"], 2)
            if "limit500_first_sold_out_s" in marks
            else None
        ),
        "outcomes": {endpoint: dict(counter) for endpoint, counter in outcomes.items()},
    }
    with open(stem + ".json", "w") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    if environment.runner is not None and not _is_worker(environment):
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
        prefix = os.path.join(OUT, f"locust-{RUN_ID}_final")
        with open(prefix + "_stats.csv", "w", newline="") as fh:
            writer.requests_csv(csv.writer(fh))
        with open(prefix + "_failures.csv", "w", newline="") as fh:
            writer.failures_csv(csv.writer(fh))


def _is_worker(environment) -> bool:
    from locust.runners import WorkerRunner

    return isinstance(environment.runner, WorkerRunner)
