"""Promotions benchmark, in-process: `services.promotions_evaluate` on a 20-line cart with
three typed codes, against N active auto-apply promotions (bench/promotions_seed.sql),
for each N. No HTTP, no DRF: the service as the view calls it (code definitions from the
two-level cache, the compiled catalog, live counters from PostgreSQL, the engine).

    DJANGO_SETTINGS_MODULE=config.settings.bench DATABASE_URL=.../growth_bench \
        REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/promotions.py \
        RESULTS.jsonl [--ns 10 100 1000 10000] [--calls 2000] [--budget 20]
    ... bench/promotions.py RESULTS.jsonl --seed-only 1000   (seed N, tell the processes)
    ... bench/promotions.py RESULTS.jsonl --seed-only 0      (remove the bench promotions)

For each N: seed (set-wise SQL through psql), promotions.changed() so this process and
any server rebuild, catalog build time (median of 5 rebuilds), what the cart meets
(candidates from the index, eligible, applied, SQL queries per call), a warm-up, then
`--calls` timed calls (fewer if `--budget` seconds run out first) -> p50 / p99 / mean /
max in ms, printed as a table and appended to RESULTS as {"kind": "promo_inproc", ...}.

Exit status: 0 with numbers (whatever they are), 2 when it cannot set up (psql, seed,
the catalog does not see the seeded promotions), 1 on any other error.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.machine import cpu_busy_since, cpu_mark  # noqa: E402 (after sys.path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from bench import promotions_cart  # noqa: E402
from coupons import promotions, services  # noqa: E402
from coupons.api.fields import CartField  # noqa: E402
from coupons.engine.types import Shopper  # noqa: E402

SEED_SQL = ROOT / "bench" / "promotions_seed.sql"
ZERO_MESSAGE = "Nothing left for it to discount on this cart"  # pricing.evaluate's drop


class SetupError(Exception):
    pass


def seed(n: int) -> float:
    """Replace the bench promotions by n new ones; tell every process. -> seconds."""
    db = connection.settings_dict
    if "bench" not in db["NAME"]:  # DATABASE_URL not set: this would be the dev database
        raise SetupError(
            f"refusing to replace promotions in database {db['NAME']!r}: set "
            f"DATABASE_URL to the bench database (bench/run.sh does)"
        )
    env = dict(
        os.environ,
        PGHOST=db.get("HOST") or "127.0.0.1",
        PGPORT=str(db.get("PORT") or 5432),
        PGUSER=db.get("USER") or "postgres",
    )
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [  # noqa: S607 - psql from PATH, as run.sh uses it
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"n={int(n)}",
            "-d",
            db["NAME"],
            "-f",
            str(SEED_SQL),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"seeding {n} promotions failed: {done.stderr.strip()[-500:]}")
    seconds = time.perf_counter() - started
    promotions.changed()
    size = promotions.catalog().size
    if size != n:
        raise SetupError(f"seeded {n} promotions but the catalog holds {size}")
    return seconds


def build_ms(repeat: int = 5) -> float:
    """Median time to rebuild this process's catalog from PostgreSQL (what every worker
    pays after a change, and every MAX_AGE_SECONDS)."""
    times = []
    for _ in range(repeat):
        promotions.reset()
        started = time.perf_counter()
        promotions.catalog()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class Queries:
    def __init__(self):
        self.count = 0
        self.live_codes = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if "coupons_redemption r" in sql and params and isinstance(params[1], list):
            self.live_codes = len(params[1])  # selectors._LIVE_SQL: code ids read live
        return execute(sql, params, many, context)


def what_it_meets(cart) -> dict:
    """What the cart meets at this N, from one evaluation (same customer for all N)."""
    shopper = Shopper(id="bp-u-2")  # a stored customer: no segment, 3 past orders
    candidates = len(promotions.catalog().candidates(cart))
    evaluate(cart, shopper)  # caches warm
    queries = Queries()
    with connection.execute_wrapper(queries):
        result = evaluate(cart, shopper)
    failed = [s for s in result.ineligible if s.rejection.message != ZERO_MESSAGE]
    applied = result.pricing.applied
    typed = set(promotions_cart.CODES)
    return {
        "candidates": candidates,
        "eligible": candidates - len(failed),
        "applied_auto": sum(1 for a in applied if a.terms.code not in typed),
        "applied_typed": sum(1 for a in applied if a.terms.code in typed),
        "passed_over": len(result.passed_over),
        "exact": result.exact,
        "ineligible_reasons": dict(Counter(s.rejection.reason for s in failed).most_common()),
        "queries_per_call": queries.count,
        "live_codes": queries.live_codes,
        "discount_minor": result.pricing.discount + result.pricing.shipping_discount,
    }


def evaluate(cart, shopper):
    return services.promotions_evaluate(codes=promotions_cart.CODES, shopper=shopper, cart=cart)


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    index = max(0, min(len(sorted_values) - 1, math.ceil(p * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(n: int, cart, args, profile_out) -> dict:
    rng = random.Random(n)  # noqa: S311 - picks customers for a benchmark, not security
    seed_s = seed(n)
    build = build_ms()
    meets = what_it_meets(cart)
    warm_until = time.perf_counter() + 1.0  # a second of calls, at least 20
    warm = 0
    while warm < 20 or (time.perf_counter() < warm_until and warm < 1000):
        evaluate(cart, Shopper(id=promotions_cart.customer_id(rng)))
        warm += 1
    shoppers = [Shopper(id=promotions_cart.customer_id(rng)) for _ in range(args.calls)]
    times: list[float] = []
    rebuilds = 0
    catalog_id = id(promotions._catalog)
    mark = cpu_mark()
    cpu0 = time.process_time()
    deadline = time.perf_counter() + args.budget
    clock = time.perf_counter_ns
    for shopper in shoppers:
        started = clock()
        evaluate(cart, shopper)
        times.append((clock() - started) / 1e6)
        if id(promotions._catalog) != catalog_id:
            rebuilds += 1
            catalog_id = id(promotions._catalog)
        if len(times) >= 100 and time.perf_counter() > deadline:
            break
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(times)
    busy = cpu_busy_since(mark)
    times_sorted = sorted(times)
    row = {
        "kind": "promo_inproc",
        "n": n,
        "lines": len(cart.lines),
        "codes": len(promotions_cart.CODES),
        "calls": len(times),
        "p50_ms": round(pct(times_sorted, 0.50), 3),
        "p99_ms": round(pct(times_sorted, 0.99), 3),
        "mean_ms": round(statistics.fmean(times), 3),
        "max_ms": round(times_sorted[-1], 3),
        "cpu_ms_per_call": round(cpu_ms, 3),
        "build_ms": round(build, 1),
        "seed_s": round(seed_s, 2),
        "rebuilds": rebuilds,
        "cpu_busy_pct": busy,
        "background_busy_pct": args.background_busy,
        **meets,
    }
    if profile_out is not None:
        # About 3 s of calls (cProfile slows them down about 2x), at least 20.
        count = max(20, min(len(shoppers), int(1500 / max(row["mean_ms"], 0.01))))
        profiler = cProfile.Profile()
        profiler.enable()
        for shopper in shoppers[:count]:
            evaluate(cart, shopper)
        profiler.disable()
        for order, top in (("tottime", 25), ("cumulative", 30)):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(top)
            profile_out.write(
                f"=== N = {n}: {count} calls of services.promotions_evaluate, "
                f"top {top} by {order} ===\n{text.getvalue()}\n"
            )
        profile_out.flush()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="JSON lines file to append to")
    parser.add_argument("--ns", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timed calls per N at most (at least 100 calls)",
    )
    parser.add_argument("--seed-only", type=int, default=None, metavar="N")
    parser.add_argument(
        "--background-busy",
        type=int,
        default=None,
        help="machine CPU busy %% before the run (bench/run.sh), recorded",
    )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="FILE",
        help="also cProfile about 3 s of calls per N into FILE",
    )
    args = parser.parse_args()
    cart = CartField().to_internal_value(promotions_cart.cart())  # the API's own parser

    try:
        if args.seed_only is not None:
            seconds = seed(args.seed_only)
            if args.seed_only:
                meets = what_it_meets(cart)
                print(
                    f"  seeded {args.seed_only} auto promotions in {seconds:.1f} s: the cart "
                    f"meets {meets['candidates']} candidates, {meets['eligible']} eligible; "
                    f"applied: {meets['applied_auto']} of them and "
                    f"{meets['applied_typed']} of {len(promotions_cart.CODES)} typed codes"
                )
            else:
                print(f"  removed the bench promotions ({seconds:.1f} s)")
            return 0
    except SetupError as exc:
        print(f"promotions bench: cannot set up: {exc}", file=sys.stderr)
        return 2

    print(
        f"  in-process: services.promotions_evaluate, {len(cart.lines)}-line cart "
        f"(subtotal {cart.subtotal / 100:.2f} USD), codes {' '.join(promotions_cart.CODES)}, "
        f"{args.calls} calls per N (at most {args.budget:.0f} s)"
    )
    head = (
        f"  {'N':>6} {'cand':>5} {'elig':>5} {'appl':>4} {'SQL':>3} {'live':>4} "
        f"{'build ms':>8} {'calls':>5} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>7} "
        f"{'max ms':>7} {'cpu ms':>6} {'CPU':>4}"
    )
    print(head, flush=True)
    with open(args.profile, "w") if args.profile else contextlib.nullcontext() as profile_out:
        for n in args.ns:
            try:
                row = measure(n, cart, args, profile_out)
            except SetupError as exc:
                print(f"promotions bench: cannot set up: {exc}", file=sys.stderr)
                return 2
            with open(args.results, "a") as out:
                out.write(json.dumps(row) + "\n")
            print(
                f"  {n:>6} {row['candidates']:>5} {row['eligible']:>5} "
                f"{row['applied_auto'] + row['applied_typed']:>4} "
                f"{row['queries_per_call']:>3} {row['live_codes']:>4} "
                f"{row['build_ms']:>8.1f} {row['calls']:>5} {row['p50_ms']:>7.2f} "
                f"{row['p99_ms']:>7.2f} {row['mean_ms']:>7.2f} {row['max_ms']:>7.2f} "
                f"{row['cpu_ms_per_call']:>6.2f} {row['cpu_busy_pct']:>3}%",
                flush=True,
            )
    print(
        "  cand = promotions the index returns for the cart; elig = those passing every "
        "check; appl = applied (auto + typed);"
    )
    print(
        "  SQL = queries per call; live = codes whose counters that query reads; "
        "cpu ms = this process's CPU per call"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
