"""Turn bench/run.sh's JSON result lines into the summary table: print it and write it
to bench/out/latest.txt. Targets are shown for comparison only; nothing here fails."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path


def num(value, fmt: str = ".0f", none: str = "-") -> str:
    if value is None or value != value:  # None or NaN
        return none
    return format(value, fmt)


def checkout_sections(add, env, wrk, applies, checks, pgb, short) -> None:
    """Steps 5-6: wrk, the apply race, pgbench, and the issue's checkout targets."""
    add(
        f"HTTP throughput (wrk -t2, {env.get('duration', '?')} s per run, --latency). CPU = "
        f"both cores' busy % during the run,"
    )
    add("bg = busy % from other processes just before it")
    add(
        f"{'workers':>7} {'conns':>5}  {'test':<9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} "
        f"{'non-2xx':>7} {'sockerr':>7} {'CPU':>4} {'bg':>4}  note"
    )
    bare = {(r["workers"], r["conns"]): r for r in wrk if r["test"] == "bare"}
    for r in wrk:
        note = ""
        if r["test"] == "validate":
            base = bare.get((r["workers"], r["conns"]))
            if base and base.get("rps") and r.get("rps"):
                note = f"{r['rps'] / base['rps']:.0%} of bare"
            if r.get("bodies_not_valid"):
                note += f"  {r['bodies_not_valid']} bodies not valid:true!"
        add(
            f"{r['workers']:>7} {r['conns']:>5}  {r['test']:<9} {num(r.get('rps')):>7} "
            f"{num(r.get('p50_ms'), '.2f'):>7} {num(r.get('p99_ms'), '.2f'):>8} "
            f"{r.get('non2xx', 0):>7} {sum(r.get('socket_errors', {}).values()):>7} "
            f"{num(r.get('cpu_busy_pct')) + '%':>4} {num(r.get('background_busy_pct')) + '%':>4}"
            f"  {note}"
        )
    add("")

    add("Hot-coupon apply race over HTTP (HOT1000, max_uses_total 1000; unique order,")
    add("Idempotency-Key and customer per call; redemptions/s = 200s / time of the last 200)")
    add(
        f"{'workers':>7} {'sent':>5} {'200':>5} {'422':>5} {'other':>5} {'sell-out s':>10} "
        f"{'redeem/s':>8} {'calls/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'CPU':>4}  check"
    )
    for r in applies:
        other = r["sent"] - r["ok"] - r["rejected_422"]
        check = checks.get(r["workers"], {})
        verdict = check.get("verdict", "?")
        add(
            f"{r['workers']:>7} {r['sent']:>5} {r['ok']:>5} {r['rejected_422']:>5} {other:>5} "
            f"{num(r.get('sell_out_s'), '.2f'):>10} {num(r.get('redemptions_per_s')):>8} "
            f"{num(r.get('requests_per_s')):>7} {num(r.get('p50_ms'), '.1f'):>7} "
            f"{num(r.get('p99_ms'), '.1f'):>8} {num(check.get('cpu_busy_pct')) + '%':>4}  "
            f"{verdict} (uses={check.get('uses')}, "
            f"reserved={check.get('reserved')}, http 200={r['ok']})"
        )
    add("")

    add(
        f"pgbench on one hot row, {env.get('pg_duration', '?')} s each. apply_tx.sql = apply's "
        f"SQL (new customer; then lock coupon, code,"
    )
    add(
        "customer; counters + redemption in one statement; commit). apply_tx_short.sql = "
        "only the one write statement"
    )
    add(
        f"{'clients':>7} {'tps':>7} {'avg ms':>7} {'CPU':>4} {'failed':>6} {'short tps':>9} "
        f"{'avg ms':>7} {'CPU':>4}  check"
    )
    for r in pgb:
        s = short.get(r["clients"], {})
        add(
            f"{r['clients']:>7} {num(r.get('tps')):>7} {num(r.get('latency_ms'), '.2f'):>7} "
            f"{num(r.get('cpu_busy_pct')) + '%':>4} {num(r.get('failed')):>6} "
            f"{num(s.get('tps')):>9} {num(s.get('latency_ms'), '.2f'):>7} "
            f"{num(s.get('cpu_busy_pct')) + '%':>4}  {r.get('verdict', '')}"
        )
    add("")

    add("Targets from the issue (informational; make bench never fails on them)")
    validate = [r for r in wrk if r["test"] == "validate" and r.get("rps")]
    if validate:
        best = max(validate, key=lambda r: r["rps"])
        base = bare.get((best["workers"], best["conns"]), {})
        ratio = best["rps"] / base["rps"] if base.get("rps") else None
        met = best["rps"] >= 2500 and (best.get("p99_ms") or 1e9) < 10
        add(
            f"  validate p99 < 10 ms at >= 2,500 req/s: best {best['rps']:.0f} req/s, "
            f"p99 {num(best.get('p99_ms'), '.2f')} ms (workers {best['workers']}, "
            f"c{best['conns']}) -> {'met' if met else 'NOT met'}"
        )
        fast = [r for r in validate if (r.get("p99_ms") or 1e9) < 10]
        if fast:
            top = max(fast, key=lambda r: r["rps"])
            add(
                f"    highest validate req/s with p99 < 10 ms: {top['rps']:.0f} "
                f"(workers {top['workers']}, c{top['conns']})"
            )
        else:
            add("    no validate run had p99 < 10 ms")
        add(
            f"  validate >= 35% of bare: {num(ratio * 100 if ratio else None)}% "
            f"-> {'met' if ratio and ratio >= 0.35 else 'NOT met'}"
        )
    if applies:
        best_apply = max(applies, key=lambda r: r.get("redemptions_per_s") or 0)
        rate = best_apply.get("redemptions_per_s") or 0
        exact = checks.get(best_apply["workers"], {}).get("verdict") == "EXACT"
        add(
            f"  apply >= 1,000 exact redemptions/s: best {rate:.0f}/s "
            f"(workers {best_apply['workers']}, {'exact' if exact else 'NOT exact'}) "
            f"-> {'met' if rate >= 1000 and exact else 'NOT met'}"
        )
        if pgb:
            top = max(pgb, key=lambda r: r.get("tps") or 0)
            near = min(pgb, key=lambda r: abs(r["clients"] - best_apply["workers"]))
            refs = [("at the nearest client count", near)]
            if top is not near:
                refs.append(("best", top))
            for label, ref in refs:
                if ref.get("tps"):
                    share = rate / ref["tps"]
                    add(
                        f"  apply >= 40% of pgbench ({label}: {ref['tps']:.0f} tps, "
                        f"{ref['clients']} clients): {share:.0%} "
                        f"-> {'met' if share >= 0.40 else 'NOT met'}"
                    )


def promotion_sections(out: list[str], rows) -> None:
    """Step 7: promotions/evaluate in-process by number of promotions, over HTTP, targets."""
    add = out.append
    inproc = sorted((r for r in rows if r["kind"] == "promo_inproc"), key=lambda r: r["n"])
    http = [r for r in rows if r["kind"] == "promo_http"]
    if not inproc and not http:
        return
    if out and out[-1]:
        add("")
    add(
        "Promotions: POST /api/v1/promotions/evaluate's work on a 20-line cart (3 categories) "
        "with 3 typed codes,"
    )
    add("against N active auto-apply promotions (bench/promotions_seed.sql)")
    if inproc:
        add(
            "In-process (services.promotions_evaluate). cand = promotions the index returns for "
            "the cart, elig = passing"
        )
        add(
            "every check, appl = applied (auto + typed); build = catalog rebuild; cpu = this "
            "process's CPU per call; CPU = both cores"
        )
        add(
            f"{'N':>6} {'cand':>5} {'elig':>5} {'appl':>4} {'build ms':>8} {'calls':>5} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'mean ms':>7} {'max ms':>7} {'cpu ms':>6} "
            f"{'CPU':>4} {'bg':>4}  discount found"
        )
        for r in inproc:
            add(
                f"{r['n']:>6} {r['candidates']:>5} {r['eligible']:>5} "
                f"{r['applied_auto'] + r['applied_typed']:>4} {num(r.get('build_ms'), '.1f'):>8} "
                f"{r['calls']:>5} {num(r.get('p50_ms'), '.2f'):>7} "
                f"{num(r.get('p99_ms'), '.2f'):>7} {num(r.get('mean_ms'), '.2f'):>7} "
                f"{num(r.get('max_ms'), '.2f'):>7} {num(r.get('cpu_ms_per_call'), '.2f'):>6} "
                f"{num(r.get('cpu_busy_pct')) + '%':>4} "
                f"{num(r.get('background_busy_pct')) + '%':>4}  "
                f"{r['discount_minor'] / 100:.2f}{'' if r.get('exact') else ' (bounded)'}"
            )
    if http:
        first = http[0]
        add(
            f"Over HTTP at N = {first.get('n')} ({first.get('workers')} gunicorn sync workers; "
            f"open loop: latency from each request's due time;"
        )
        add(
            f"response {first.get('response_bytes', 0):,} bytes; errors = non-200, bad body, "
            f"socket errors and requests not sent in time;"
        )
        add("srv ms = gunicorn master + workers' CPU per request)")
        add(
            f"{'stage':<6} {'offered':>7} {'achieved':>8} {'sent':>6} {'p50 ms':>7} "
            f"{'p90 ms':>7} {'p99 ms':>7} {'max ms':>8} {'errors':>6} {'srv ms':>6} {'CPU':>4} "
            f"{'bg':>4}"
        )
        for r in http:
            note = (
                ""
                if r["stage"] == "fixed"
                else ("  sustained" if r.get("sustained") else "  NOT sustained")
            )
            add(
                f"{r['stage']:<6} {r['offered_rps']:>7.0f} {num(r.get('achieved_rps')):>8} "
                f"{r['sent']:>6} {num(r.get('p50_ms'), '.2f'):>7} "
                f"{num(r.get('p90_ms'), '.2f'):>7} {num(r.get('p99_ms'), '.2f'):>7} "
                f"{num(r.get('max_ms'), '.2f'):>8} {r['errors'] + r['dropped']:>6} "
                f"{num(r.get('server_cpu_ms_per_req'), '.2f'):>6} "
                f"{num(r.get('cpu_busy_pct')) + '%':>4} "
                f"{num(r.get('background_busy_pct')) + '%':>4}{note}"
            )
    add("")
    add("Promotion targets from the issue (informational; make bench never fails on them)")
    at = {r["n"]: r for r in inproc}
    if 1000 in at:
        p99 = at[1000].get("p99_ms")
        add(
            f"  in-process p99 < 5 ms at N = 1,000: {num(p99, '.2f')} ms "
            f"-> {'met' if p99 is not None and p99 < 5 else 'NOT met'}"
        )
    fixed = [r for r in http if r["stage"] == "fixed"]
    for r in fixed:
        ok = (
            (r.get("p99_ms") or 1e9) < 15
            and r["errors"] + r["dropped"] == 0
            and (r.get("achieved_rps") or 0) >= 0.95 * r["offered_rps"]
        )
        add(
            f"  HTTP p99 < 15 ms at {r['offered_rps']:.0f} requests/s (N = {r.get('n')}): "
            f"{num(r.get('p99_ms'), '.2f')} ms, {r['errors'] + r['dropped']} errors "
            f"-> {'met' if ok else 'NOT met'}"
        )
    ramp = [r for r in http if r["stage"] == "ramp"]
    if ramp:
        held = [r["offered_rps"] for r in ramp if r.get("sustained")]
        add(
            "    highest rate sustained in the ramp: "
            + (
                f"{max(held):.0f} requests/s"
                if held
                else f"none (from {ramp[0]['offered_rps']:.0f})"
            )
        )
    if len(inproc) > 1:
        steps = []
        sub = True
        for a, b in itertools.pairwise(inproc):
            n_x = b["n"] / a["n"]
            t_x = b["mean_ms"] / a["mean_ms"] if a.get("mean_ms") else None
            sub = sub and t_x is not None and t_x < n_x
            steps.append(
                f"N x{n_x:g} -> mean x{num(t_x, '.1f')} (candidates "
                f"{a['candidates']} -> {b['candidates']})"
            )
        add(
            f"  cost sub-linear in N (each x10 in N costs less than x10 in time): "
            f"{'met' if sub else 'NOT met'}"
        )
        for step in steps:
            add(f"    {step}")
        per = [
            f"{r['n']}: {r['mean_ms'] / r['candidates'] * 1000:.0f} us"
            for r in inproc
            if r.get("candidates")
        ]
        add(f"    mean time per candidate: {', '.join(per)}")


def issue5_sections(out: list[str], rows) -> None:
    """Steps 8 and 9: bulk codes through the real task, and flash-sale claims over HTTP."""
    add = out.append
    codegen = [r for r in rows if r["kind"] == "codegen"]
    loads = [r for r in rows if r["kind"] == "claims_load"]
    checks = [r for r in rows if r["kind"] == "claims_check"]
    if codegen:
        add("")
        add(
            "Bulk codes through the real Celery task vs a raw COPY into a bare table with a "
            "unique index"
        )
        add(
            f"{'codes':>9} {'raw COPY s':>10} {'task s':>7} {'ratio':>5} {'codes/s':>8} "
            f"{'worker MB':>9}  check"
        )
        for r in codegen:
            add(
                f"{r['count']:>9,} {r['raw_copy_s']:>10.2f} {r['task_s']:>7.2f} "
                f"{r['ratio']:>5.1f} {r['codes_per_s']:>8,} "
                f"{num(r.get('worker_peak_rss_mb'), '.0f'):>9}  "
                f"{'EXACT' if r.get('ok') else 'NOT EXACT'}"
            )
        best = min(codegen, key=lambda r: r["task_s"])
        add(
            f"  target: < 10 s and within 2x of raw COPY, worker < 200 MB: "
            f"{best['task_s']:.1f} s, {best['ratio']:.1f}x, "
            f"{num(best.get('worker_peak_rss_mb'), '.0f')} MB -> "
            f"{'met' if best['task_s'] < 10 and best['ratio'] <= 2 else 'NOT met'} (time), "
            f"{'met' if (best.get('worker_peak_rss_mb') or 1e9) < 200 else 'NOT met'} "
            "(memory)"
        )
    if loads:
        add("")
        add("Flash-sale claims over HTTP (bench/claims.sh; each request a fresh Idempotency-Key)")
        add(
            f"{'workers':>7} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}  "
            "statuses  check"
        )
        for load, check in zip(loads, checks + [{}] * len(loads), strict=False):
            add(
                f"{load['workers']:>7} {load['clients']:>7} {load['requests_per_s']:>7.0f} "
                f"{load['p50_ms']:>7.1f} {load['p99_ms']:>7.1f}  {load['status']}  "
                f"{check.get('verdict', '?')} ({check.get('claims', '?')} claims)"
            )
        best = max(loads, key=lambda r: r["requests_per_s"])
        add(
            f"  target: >= 1,500 req/s and p99 < 100 ms: {best['requests_per_s']:.0f} req/s, "
            f"p99 {best['p99_ms']:.0f} ms -> "
            f"{'met' if best['requests_per_s'] >= 1500 and best['p99_ms'] < 100 else 'NOT met'}"
        )


def issue6_section(out: list[str], rows) -> None:
    """Step 11: validate and apply with analytics + abuse rate limits off vs on."""
    runs = [r for r in rows if r["kind"] == "overhead"]
    if not runs:
        return
    add = out.append
    add("")
    add(
        "Abuse protection + analytics overhead (same server and load, features off vs on, "
        "alternated)"
    )
    add(f"{'test':<9} {'mode':<4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7}")
    for r in runs:
        add(
            f"{r['test']:<9} {r['mode']:<4} {num(r['rps']):>8} {num(r['p50_ms'], '.2f'):>7} "
            f"{num(r['p99_ms'], '.2f'):>7} {r['non2xx']:>7}"
        )
    for test in ("validate", "apply"):
        off = [r["rps"] for r in runs if r["test"] == test and r["mode"] == "off" and r["rps"]]
        on = [r["rps"] for r in runs if r["test"] == test and r["mode"] == "on" and r["rps"]]
        if off and on:
            a, b = sum(off) / len(off), sum(on) / len(on)
            overhead = 100 * (a - b) / a
            spread = 100 * (max(off) - min(off)) / a
            add(
                f"  {test}: off {a:.0f} req/s, on {b:.0f} req/s (means of {len(off)} and "
                f"{len(on)} runs) -> overhead {overhead:.1f}% (target < 10%: "
                f"{'met' if overhead < 10 else 'NOT met'}; the off runs alone spread "
                f"{spread:.0f}%)"
            )


def billing_section(out: list[str], rows) -> None:
    """Step 12: due renewals through the real beat job vs a plain insert; subscribe."""
    renewals = [r for r in rows if r["kind"] == "billing_renewals"]
    subscribes = [r for r in rows if r["kind"] == "billing_subscribe"]
    if not renewals and not subscribes:
        return
    add = out.append
    if renewals:
        add("")
        add(
            "Billing renewals: billing.run_due sent once to Celery workers (test gateway, no "
            "latency) vs a plain SQL INSERT ... SELECT"
        )
        add("of the same invoice rows + lines into scratch tables (LIKE ... INCLUDING ALL)")
        add(
            f"{'subs':>8} {'workers':>7} {'job s':>7} {'renew/s':>7} {'plain s':>7} "
            f"{'ratio':>6} {'wkr cpu s':>10} {'pg cpu s':>8} {'CPU':>4} {'bg':>4}  check"
        )
        for r in renewals:
            add(
                f"{r['subs']:>8,} {r['workers']:>7} {r['job_s']:>7.1f} "
                f"{r['renewals_per_s']:>7,.0f} {r['baseline_s']:>7.2f} {num(r.get('ratio')):>5}x "
                f"{'+'.join(f'{c:.0f}' for c in r.get('worker_cpu_s') or []):>10} "
                f"{num(r.get('postgres_cpu_s')):>8} {num(r.get('cpu_busy_pct')) + '%':>4} "
                f"{num(r.get('background_busy_pct')) + '%':>4}  "
                f"{'EXACT' if r.get('exact') else 'NOT EXACT'}"
                + (
                    f" (stalled: {r.get('subs_one_paid', 0):,} renewed by "
                    f"{num(r.get('last_progress_s'))} s"
                    + (
                        f", {r['time_limit_hits']} Celery time-limit hits"
                        if r.get("time_limit_hits")
                        else ""
                    )
                    + ")"
                    if r.get("stalled")
                    else ""
                )
            )
        for r in renewals:
            heavy = {k: v for k, v in (r.get("seq_scans") or {}).items() if v[1] > r["subs"]}
            if heavy:
                add(
                    f"  {r['subs']:,} run: sequential scans (scans, rows read) "
                    + ", ".join(f"{k} {v[0]:,}, {v[1]:,}" for k, v in sorted(heavy.items()))
                )
        most = max(r["subs"] for r in renewals)
        full = [r for r in renewals if r["subs"] == most]
        done = [r for r in full if r.get("exact")]
        best = min(done or full, key=lambda r: r["job_s"])
        met = bool(done) and best["job_s"] < 60 and best["subs"] >= 100_000
        add(
            f"  target: {best['subs']:,} renewals with 2 workers in < 60 s: "
            + (f"{best['job_s']:.1f} s" if done else "no complete run")
            + f" -> {'met' if met else 'NOT met'}"
            f"{'' if best['subs'] >= 100_000 else ' (fewer than 100,000 subscriptions)'}; "
            f"ratio to the plain insert {num(best.get('ratio'))}x"
        )
    if subscribes:
        add("")
        add(
            "Billing subscribe over HTTP: POST /api/v1/billing/subscriptions, each a new "
            "customer (PUT first, its own phase) and Idempotency-Key"
        )
        add(
            f"{'call':<9} {'workers':>7} {'clients':>7} {'req/s':>7} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU':>4} {'bg':>4}  statuses"
        )
        for r in subscribes:
            for label, p in (("PUT cust", r.get("put") or {}), ("subscribe", r)):
                if not p:
                    continue
                add(
                    f"{label:<9} {num(r.get('workers')):>7} {r['concurrency']:>7} "
                    f"{num(p.get('requests_per_s')):>7} {num(p.get('p50_ms'), '.1f'):>7} "
                    f"{num(p.get('p95_ms'), '.1f'):>7} {num(p.get('p99_ms'), '.1f'):>7} "
                    f"{num(p.get('max_ms'), '.1f'):>7} {num(p.get('cpu_busy_pct')) + '%':>4} "
                    f"{num(r.get('background_busy_pct')) + '%':>4}  {p.get('status')}"
                )
            add(
                f"  check: {r['active_subscriptions']:,} active subscriptions, "
                f"{r['paid_first_invoices']:,} paid first invoices -> "
                f"{'OK' if r.get('ok') else 'MISMATCH'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--latest", default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line]
    env = next((r for r in rows if r["kind"] == "env"), {})
    wrk = [r for r in rows if r["kind"] == "wrk"]
    applies = [r for r in rows if r["kind"] == "apply"]
    checks = {r["workers"]: r for r in rows if r["kind"] == "apply_check"}
    pgb_all = [r for r in rows if r["kind"] == "pgbench"]
    pgb = [r for r in pgb_all if r.get("script", "apply_tx") == "apply_tx"]
    short = {r["clients"]: r for r in pgb_all if r.get("script") == "apply_tx_short"}
    busy = [r["background_busy_pct"] for r in rows if r.get("background_busy_pct") is not None]

    out: list[str] = []
    add = out.append
    add(f"make bench - {env.get('date', '?')} - run {env.get('run_id', '?')}")
    add(
        f"machine: {env.get('cpus', '?')} CPU ({env.get('cpu_model', '?')}), "
        f"{env.get('mem_gb', '?')} GB RAM, {env.get('postgres', '?')}, loopback only"
    )
    add(
        f"server: gunicorn sync workers {env.get('workers_list', '?')}, "
        f"DB pool per worker min {env.get('db_pool_min')} max {env.get('db_pool_max')}, "
        f"API_KEY_CACHE_SECONDS={env.get('api_key_cache_seconds')}, "
        f"COUPON_LOCAL_CACHE_SECONDS={env.get('coupon_local_cache_seconds')}"
    )
    add(
        f"product: commit {env.get('commit', '?')}"
        + (
            f" with {env['modified_files']} uncommitted modified file(s)"
            if env.get("modified_files")
            else ""
        )
    )
    if env.get("only") in ("promotions", "codegen", "claims", "overhead", "billing"):
        add(f"BENCH_ONLY={env['only']}: checkout steps and the 100,000-coupon seed skipped")
    else:
        add(
            f"seed: {env.get('coupons', '?')} coupons / {env.get('codes', '?')} codes "
            f"(+ 200,000 past redemptions; seed step {env.get('seed_s', '?')} s)"
        )
    if busy:
        add(
            f"background CPU busy just before each run (other processes on the box): "
            f"min {min(busy):.0f}% avg {sum(busy) / len(busy):.0f}% max {max(busy):.0f}%"
            + ("   <-- the machine was shared; numbers are low" if max(busy) > 25 else "")
        )
    add("")

    if env.get("only") in (None, "", "checkout"):
        checkout_sections(add, env, wrk, applies, checks, pgb, short)
    promotion_sections(out, rows)
    issue5_sections(out, rows)
    issue6_section(out, rows)
    billing_section(out, rows)
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.latest:
        Path(args.latest).write_text(text)


if __name__ == "__main__":
    main()
