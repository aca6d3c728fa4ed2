"""The report of `make load`: locust's CSV stats per endpoint, the client's own outcome
counts (business answers apart from errors), CPU accounting, and an exact audit of
PostgreSQL (growth_load) against what the client saw.

    python bench/load/check.py --run-id RUN --out bench/load/out --latest bench/load/out/latest.txt

Reads, from --out: locust-RUN_final_stats.csv and _final_failures.csv (locust's CSV rows
written by the locustfile at the end; else locust --csv's own files), client-RUN-*.json
and client-RUN-*.tsv (bench/load/locustfile.py), env-RUN.json and metrics-RUN.txt
(bench/load/run.sh). The database is DATABASE_URL.

The audit (every line must hold for "EXACT"):
  - every coupon and every code: uses == its reserved + confirmed redemptions, and
    uses <= its limit; no customer holds more live ONCE1 uses than max_uses_per_user
  - every apply the client saw answered 200 has exactly one redemption row, for that
    code and customer, in the state the client left it in (confirmed after a confirm
    200, released after a release 200, else reserved); no redemption row exists for an
    order the client did not see applied (an apply whose answer was lost - socket error
    or 5xx - may or may not have a row; those are listed as unknown, not as exact)
  - the confirmed rows == confirm 200s, released rows == release 200s, reserved rows ==
    the rest, no row expired; no idempotency record left "started"

Exit status: 0 exact, 1 not exact, 2 the audit could not run. Nothing fails on timing.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

ENDPOINTS = ["validate", "apply", "confirm", "release"]
NAMED = ["LOAD25", "LOAD10", "LIMIT500", "ONCE1"]
BUSINESS_422 = ("usage_limit_reached", "customer_limit_reached")


def fmt(value, spec: str = ",.0f", none: str = "-") -> str:
    if value is None or value != value:
        return none
    return format(value, spec)


def is_error(label: str) -> bool:
    return label.startswith("socket:") or "unexpected" in label


def is_business(label: str) -> bool:
    return label.startswith("200 invalid:") or (
        label.startswith("422 ") and label.split()[1] in BUSINESS_422
    )


def read_stats(path: Path) -> dict[str, dict]:
    rows = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = row
    return rows


def read_clients(out: Path, run_id: str) -> tuple[dict, dict[str, Counter], list[tuple]]:
    summaries = [
        json.loads(Path(p).read_text())
        for p in sorted(glob.glob(str(out / f"client-{run_id}-*.json")))
    ]
    outcomes: dict[str, Counter] = {e: Counter() for e in ENDPOINTS}
    for s in summaries:
        for endpoint, counts in s["outcomes"].items():
            outcomes.setdefault(endpoint, Counter()).update(counts)
    orders = []
    for p in sorted(glob.glob(str(out / f"client-{run_id}-*.tsv"))):
        with open(p) as fh:
            orders.extend(tuple(line.rstrip("\n").split("\t")) for line in fh if line.strip())
    client = {
        "processes": len(summaries),
        "cpu_s": sum(s["cpu_s"] for s in summaries),
        "wall_s": max((s["wall_s"] for s in summaries), default=0.0),
        "limit500_first_sold_out_s": min(
            (
                s["limit500_first_sold_out_s"]
                for s in summaries
                if s.get("limit500_first_sold_out_s") is not None
            ),
            default=None,
        ),
    }
    return client, outcomes, orders


def read_metrics(path: Path) -> dict[tuple[str, str], float]:
    """coupon_* counters from the /metrics text: (metric, label value) -> value."""
    found: dict[tuple[str, str], float] = {}
    if not path.exists():
        return found
    pattern = re.compile(r'^(coupon_\w+_total)\{\w+="([^"]*)"\} ([0-9.eE+]+)$')
    for line in path.read_text().splitlines():
        m = pattern.match(line)
        if m:
            found[(m.group(1), m.group(2))] = float(m.group(3))
    return found


def audit(dsn: str, orders: list[tuple], outcomes: dict[str, Counter]) -> tuple[list, dict]:
    """Run the checks in PostgreSQL. Returns (lines of (ok, text), facts)."""
    import psycopg

    checks: list[tuple[bool | None, str]] = []
    facts: dict = {}
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        # --- counters against rows, for every coupon and every code -----------------------
        cur.execute("""
            SELECT c.code, c.uses, c.max_uses_total, c.max_uses_per_user,
                   count(r.id) FILTER (WHERE r.status IN ('reserved', 'confirmed')),
                   count(r.id) FILTER (WHERE r.status = 'reserved'),
                   count(r.id) FILTER (WHERE r.status = 'confirmed'),
                   count(r.id) FILTER (WHERE r.status = 'released'),
                   count(r.id) FILTER (WHERE r.status = 'expired')
              FROM coupons_coupon c LEFT JOIN coupons_redemption r ON r.coupon_id = c.id
             GROUP BY c.id ORDER BY c.code""")
        coupons = cur.fetchall()
        facts["coupons"] = {row[0]: row for row in coupons if row[0] in NAMED}
        bad_uses = [r for r in coupons if r[1] != r[4]]
        over = [r for r in coupons if r[2] is not None and r[1] > r[2]]
        checks.append(
            (
                not bad_uses,
                f"coupons: uses == reserved + confirmed for all "
                f"{len(coupons):,} coupons"
                + (
                    f" -- {len(bad_uses)} differ: "
                    + ", ".join(f"{r[0]} uses {r[1]} live {r[4]}" for r in bad_uses[:5])
                    if bad_uses
                    else ""
                ),
            )
        )
        checks.append(
            (
                not over,
                "coupons: uses <= max_uses_total everywhere (no "
                "over-redemption)"
                + (
                    f" -- {len(over)} over: " + ", ".join(f"{r[0]} {r[1]}/{r[2]}" for r in over[:5])
                    if over
                    else ""
                ),
            )
        )
        cur.execute("""
            SELECT count(*) FILTER (WHERE k.uses <> coalesce(x.live, 0)),
                   count(*) FILTER (WHERE k.max_uses IS NOT NULL AND k.uses > k.max_uses),
                   count(*)
              FROM coupons_code k
              LEFT JOIN (SELECT code_id, count(*) AS live FROM coupons_redemption
                          WHERE status IN ('reserved', 'confirmed') GROUP BY code_id) x
                ON x.code_id = k.id""")
        code_bad, code_over, code_n = cur.fetchone()
        checks.append(
            (
                code_bad == 0 and code_over == 0,
                f"codes: uses == reserved + confirmed and within max_uses for all "
                f"{code_n:,} codes"
                + (f" -- {code_bad} differ, {code_over} over" if code_bad or code_over else ""),
            )
        )
        cur.execute("""
            SELECT coalesce(max(n), 0), count(*) FILTER (WHERE n > 1), count(*) FROM (
              SELECT r.customer_id, count(*) AS n FROM coupons_redemption r
                JOIN coupons_coupon c ON c.id = r.coupon_id
               WHERE c.code = 'ONCE1' AND r.status IN ('reserved', 'confirmed')
               GROUP BY r.customer_id) t""")
        once_max, once_over, once_customers = cur.fetchone()
        checks.append(
            (
                once_over == 0,
                f"ONCE1: {once_customers} customers hold a live use, "
                f"most per customer {once_max} (limit 1)",
            )
        )

        # --- the client's view against the rows, order by order ---------------------------
        cur.execute(
            "CREATE TEMP TABLE client_orders (order_id text PRIMARY KEY, code text, "
            "customer text, state text)"
        )
        with cur.copy("COPY client_orders FROM STDIN") as copy:
            for row in orders:
                copy.write_row(row)
        cur.execute("ANALYZE client_orders")
        cur.execute("""
            SELECT count(*) FILTER (WHERE n = 1 AND matches),
                   count(*) FILTER (WHERE n = 0),
                   count(*) FILTER (WHERE n > 1),
                   count(*) FILTER (WHERE n = 1 AND NOT matches)
              FROM (SELECT o.order_id, count(r.id) AS n,
                           bool_and(k.code = o.code AND cu.external_id = o.customer
                                    AND r.status = o.state) AS matches
                      FROM client_orders o
                      LEFT JOIN coupons_redemption r ON r.order_id = o.order_id
                      LEFT JOIN coupons_code k ON k.id = r.code_id
                      LEFT JOIN coupons_customer cu ON cu.id = r.customer_id
                     WHERE o.state IN ('reserved', 'confirmed', 'released')
                     GROUP BY o.order_id) t""")
        exact_rows, missing, duplicated, wrong = cur.fetchone()
        client_ok = sum(1 for o in orders if o[3] in ("reserved", "confirmed", "released"))
        checks.append(
            (
                exact_rows == client_ok and not (missing or duplicated or wrong),
                f"applies answered 200: {client_ok:,}; with exactly one matching row "
                f"(code, customer, state): {exact_rows:,}; missing {missing}, "
                f"duplicated {duplicated}, wrong code/customer/state {wrong}",
            )
        )
        cur.execute("""
            SELECT count(*) FROM coupons_redemption r
             WHERE r.order_id NOT LIKE 'hist-o-%'
               AND NOT EXISTS (SELECT 1 FROM client_orders o WHERE o.order_id = r.order_id)""")
        phantom = cur.fetchone()[0]
        checks.append(
            (phantom == 0, f"redemption rows for orders the client never saw applied: {phantom}")
        )
        cur.execute("""
            SELECT o.state, count(r.id) FROM client_orders o
              LEFT JOIN coupons_redemption r ON r.order_id = o.order_id
             WHERE o.state LIKE 'unknown%' GROUP BY o.state""")
        unknown = cur.fetchall()
        if unknown:
            checks.append(
                (
                    None,
                    "calls whose answer was lost (socket error / 5xx), rows "
                    "found: " + ", ".join(f"{s}: {n}" for s, n in unknown),
                )
            )

        # --- totals by state ------------------------------------------------------------
        cur.execute("""
            SELECT count(*) FILTER (WHERE status = 'reserved'),
                   count(*) FILTER (WHERE status = 'confirmed'),
                   count(*) FILTER (WHERE status = 'released'),
                   count(*) FILTER (WHERE status = 'expired'), count(*)
              FROM coupons_redemption WHERE order_id NOT LIKE 'hist-o-%'""")
        reserved, confirmed, released, expired, total = cur.fetchone()
        apply_200 = sum(v for k, v in outcomes["apply"].items() if k.startswith("200 "))
        confirm_200 = outcomes["confirm"].get("200", 0)
        release_200 = outcomes["release"].get("200", 0)
        facts.update(
            reserved=reserved,
            confirmed=confirmed,
            released=released,
            expired=expired,
            total=total,
            apply_200=apply_200,
            confirm_200=confirm_200,
            release_200=release_200,
        )
        checks.append(
            (
                total == apply_200,
                f"redemption rows written by the run: {total:,} == apply 200s {apply_200:,}",
            )
        )
        checks.append(
            (
                confirmed == confirm_200,
                f"confirmed rows {confirmed:,} == confirm 200s {confirm_200:,}",
            )
        )
        checks.append(
            (released == release_200, f"released rows {released:,} == release 200s {release_200:,}")
        )
        left = apply_200 - confirm_200 - release_200
        checks.append(
            (
                reserved == left,
                f"reserved rows {reserved:,} == apply 200s without "
                f"a follow-up 200 ({left:,}); expired rows {expired}",
            )
        )
        if expired:
            checks.append((False, f"{expired} rows expired during the run (no beat runs)"))

        cur.execute("""SELECT count(*) FILTER (WHERE state = 'started'),
                              count(*) FILTER (WHERE state = 'done') FROM core_idempotencyrecord""")
        started, done = cur.fetchone()
        apply_calls = sum(outcomes["apply"].values())
        apply_errors = sum(v for k, v in outcomes["apply"].items() if is_error(k))
        checks.append(
            (
                started == 0 and (apply_errors > 0 or done == apply_calls),
                f"idempotency records: {done:,} done (one per apply call: "
                f"{apply_calls:,}), {started} left started",
            )
        )
    return checks, facts


def main() -> int:  # noqa: C901 - the report's sections, top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--out", default="bench/load/out")
    parser.add_argument("--latest", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    run = args.run_id

    env_path = out / f"env-{run}.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    # The final CSV (written by the locustfile once every request is counted) if present;
    # locust's own --csv file otherwise (rewritten every second, so it can miss the end).
    stats_path = out / f"locust-{run}_final_stats.csv"
    if not stats_path.exists():
        stats_path = out / f"locust-{run}_stats.csv"
    if not stats_path.exists():
        print(f"no locust stats at {stats_path}", file=sys.stderr)
        return 2
    stats = read_stats(stats_path)
    client, outcomes, orders = read_clients(out, run)
    metrics = read_metrics(out / f"metrics-{run}.txt")

    lines: list[str] = []
    add = lines.append
    add(f"make load - {env.get('date', '?')} - run {run}")
    add(
        f"machine: {env.get('cpus', '?')} CPU ({env.get('cpu_model', '?')}), PostgreSQL "
        f"{env.get('postgres', '?')}, loopback only; product commit {env.get('commit', '?')}"
        + (
            f" + {env['modified_files']} uncommitted modified file(s)"
            if env.get("modified_files")
            else ""
        )
    )
    add(
        f"server: gunicorn config/gunicorn.py defaults, {env.get('workers', '?')} sync workers, "
        f"DB pool per worker min {env.get('db_pool_min')} max {env.get('db_pool_max')} "
        f"({env.get('postgres_backends', '?')} PostgreSQL backends during the run); "
        f"settings config.settings.bench,"
    )
    add("        database growth_load, Redis db 12 (cache) / 13 (broker)")
    add(
        f"client: locust headless, {env.get('users', '?')} users, no think time, "
        f"{env.get('duration_s', '?')} s (+ up to 10 s for the last tasks to finish); "
        f"mix by task 80 validate / 15 apply+confirm / 5 apply+release"
    )
    add("")

    # --- throughput and latency (locust CSV) ---------------------------------------------
    total_requests = sum(int(stats[e]["Request Count"]) for e in ENDPOINTS if e in stats)
    add(
        "Throughput and latency (locust CSV; ms; errors = 5xx, socket errors, unexpected "
        "status or body;"
    )
    add(
        "business answers = validate valid:false, apply 422 usage_limit_reached / "
        "customer_limit_reached)"
    )
    add(
        f"{'endpoint':<10} {'requests':>9} {'share':>6} {'req/s':>7} {'p50':>5} {'p95':>5} "
        f"{'p99':>5} {'max':>6} {'errors':>6} {'err %':>6} {'business':>8}"
    )
    for name in [*ENDPOINTS, "Aggregated"]:
        row = stats.get(name)
        if row is None:
            continue
        n = int(row["Request Count"])
        errors = int(row["Failure Count"])
        if name == "Aggregated":
            business = sum(v for c in outcomes.values() for k, v in c.items() if is_business(k))
        else:
            business = sum(v for k, v in outcomes.get(name, {}).items() if is_business(k))
        add(
            f"{'overall' if name == 'Aggregated' else name:<10} {n:>9,} "
            f"{fmt(100 * n / total_requests if total_requests else None, '.1f') + '%':>6} "
            f"{fmt(float(row['Requests/s']), ',.0f'):>7} {row['50%']:>5} {row['95%']:>5} "
            f"{row['99%']:>5} {fmt(float(row['Max Response Time']), '.0f'):>6} {errors:>6} "
            f"{fmt(100 * errors / n if n else None, '.2f') + '%':>6} {business:>8,}"
        )
    add("")

    # --- outcomes (client) -------------------------------------------------------------
    add("Outcomes seen by the client")
    for endpoint in ENDPOINTS:
        counts = outcomes.get(endpoint) or {}
        if counts:
            add(
                f"  {endpoint:<9} "
                + ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
            )
    sold = client.get("limit500_first_sold_out_s")
    add(
        f"  LIMIT500 first answered usage_limit_reached at t = {fmt(sold, '.1f')} s"
        + (" (sold out during the run)" if sold is not None else "")
    )
    failures_path = out / f"locust-{run}_final_failures.csv"
    if not failures_path.exists():
        failures_path = out / f"locust-{run}_failures.csv"
    if failures_path.exists():
        with failures_path.open(newline="") as fh:
            failures = list(csv.DictReader(fh))
        for f in failures[:10]:
            add(f"  locust failure: {f.get('Name')}: {f.get('Error')} x {f.get('Occurrences')}")
    add("")

    # --- CPU -----------------------------------------------------------------------------
    wall = env.get("wall_s") or client.get("wall_s") or 0
    cpus = env.get("cpus") or os.cpu_count() or 1
    capacity = wall * cpus
    if capacity:

        def share(seconds: float) -> float:
            return seconds / capacity * 100

        busy = env.get("machine_busy_pct", 0)
        g_s, p_s, l_s = (
            env.get("gunicorn_cpu_s", 0),
            env.get("postgres_cpu_s", 0),
            client.get("cpu_s", 0),
        )
        add(
            f"CPU over the run ({wall:.0f} s x {cpus} cores = {capacity:.0f} CPU-s): machine "
            f"{busy}% busy = gunicorn {share(g_s):.0f}% + PostgreSQL backends {share(p_s):.0f}% "
            f"+ locust {share(l_s):.0f}% + other processes/kernel/Redis "
            f"{max(0.0, busy - share(g_s) - share(p_s) - share(l_s)):.0f}%"
        )
        if total_requests:
            per = 1000 / total_requests
            add(
                f"  CPU per request: gunicorn {g_s * per:.2f} ms + PostgreSQL {p_s * per:.2f} ms"
                f" + locust {l_s * per:.2f} ms -> gunicorn + PostgreSQL alone could serve "
                f"about {cpus * 1000 / ((g_s + p_s) * per):,.0f} req/s of this mix on {cpus} cores"
                if g_s + p_s
                else "  CPU per request: not measured"
            )
        add(
            f"  locust used {l_s:.1f} CPU-s ({l_s / wall * 100:.0f}% of one core) on the same "
            f"cores as the server; other processes kept the machine "
            f"{env.get('background_busy_pct', '?')}% busy in the second before the run"
            + (
                "   <-- the machine was shared; numbers are low"
                if (env.get("background_busy_pct") or 0) > 25
                else ""
            )
        )
    add(f"  /health/ready before: {env.get('ready_before', '?')}")
    add(f"  /health/ready after:  {env.get('ready_after', '?')}")
    add("")

    # --- database audit -------------------------------------------------------------------
    dsn = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/growth_load")
    try:
        checks, facts = audit(dsn, orders, outcomes)
    except Exception as exc:  # report, do not hide
        add(f"Database audit could not run: {type(exc).__name__}: {exc}")
        text = "\n".join(lines) + "\n"
        print(text, end="")
        if args.latest:
            Path(args.latest).write_text(text)
        return 2
    add("Database audit (growth_load, after the run)")
    add(
        f"  {'coupon':<9} {'uses':>6} {'limit':>10} {'per user':>8} {'reserved':>8} "
        f"{'confirmed':>9} {'released':>8} {'expired':>7}"
    )
    for code in NAMED:
        row = facts["coupons"].get(code)
        if row:
            add(
                f"  {code:<9} {row[1]:>6,} {fmt(row[2]):>10} {fmt(row[3]):>8} {row[5]:>8,} "
                f"{row[6]:>9,} {row[7]:>8,} {row[8]:>7,}"
            )
    exact = True
    for ok, text in checks:
        mark = "ok  " if ok else ("info" if ok is None else "FAIL")
        if ok is False:
            exact = False
        add(f"  [{mark}] {text}")
    if metrics:
        pairs = [
            ("applied", outcomes["apply"], lambda k: k.startswith("200 ")),
            (
                "usage_limit_reached",
                outcomes["apply"],
                lambda k: k.startswith("422 usage_limit_reached"),
            ),
            (
                "customer_limit_reached",
                outcomes["apply"],
                lambda k: k.startswith("422 customer_limit_reached"),
            ),
        ]
        agree = []
        for outcome, counts, pick in pairs:
            client_n = sum(v for k, v in counts.items() if pick(k))
            server_n = int(metrics.get(("coupon_applications_total", outcome), 0))
            agree.append(f"{outcome} {server_n:,}/{client_n:,}")
        for status, key in (
            ("reserved", "apply_200"),
            ("confirmed", "confirm_200"),
            ("released", "release_200"),
        ):
            server_n = int(metrics.get(("coupon_redemption_transitions_total", status), 0))
            agree.append(f"{status} {server_n:,}/{facts[key]:,}")
        add("  [info] /metrics vs client (server/client): " + ", ".join(agree))
    add(f"  -> {'EXACT' if exact else 'NOT EXACT'}")
    add("")

    # --- targets -----------------------------------------------------------------------------
    agg = stats.get("Aggregated", {})
    rps = float(agg.get("Requests/s") or 0)
    p99 = float(agg.get("99%") or 0)
    errors = int(agg.get("Failure Count") or 0)
    add("Targets from the issue (informational; make load never fails on them)")
    add(f"  >= 1,500 req/s: {rps:,.0f} -> {'met' if rps >= 1500 else 'NOT met'}")
    add(f"  p99 < 25 ms (all requests): {p99:.0f} ms -> {'met' if p99 < 25 else 'NOT met'}")
    add(f"  zero errors: {errors} -> {'met' if errors == 0 else 'NOT met'}")
    over = not any("over-redemption" in t and ok is False for ok, t in checks)
    add(f"  zero over-redemptions: {'met' if over else 'NOT met'}")

    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.latest:
        Path(args.latest).write_text(text)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
