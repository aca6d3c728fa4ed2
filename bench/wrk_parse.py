"""Read wrk's `--latency` output on stdin, append one JSON result line to --out and print
a one-line digest (bench/run.sh). Anything wrk did not report is null."""

from __future__ import annotations

import argparse
import json
import re
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float | None:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return round(float(match.group(1)) * UNITS[match.group(2)], 3) if match else None


def parse(out: str) -> dict:
    def find(pattern: str):
        return re.search(pattern, out, re.M)

    rps = find(r"Requests/sec:\s+([\d.]+)")
    requests = find(r"^\s*(\d+) requests in ([\d.]+)(\w+)")
    non2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
    errors = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    not_valid = find(r"bodies_not_valid:\s+(\d+)")
    latency = {}
    for q in ("50", "75", "90", "99"):
        match = find(rf"^\s+{q}%\s+(\S+)")
        latency[f"p{q}_ms"] = to_ms(match.group(1)) if match else None
    return {
        "rps": float(rps.group(1)) if rps else None,
        "requests": int(requests.group(1)) if requests else None,
        **latency,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)
        )
        if errors
        else {},
        "bodies_not_valid": int(not_valid.group(1)) if not_valid else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--kind", default="wrk")
    parser.add_argument("--mode", default=None, help="overhead runs: on | off")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--conns", type=int, required=True)
    parser.add_argument("--background-busy", type=float, default=None)
    parser.add_argument("--cpu-busy", type=float, default=None)
    args = parser.parse_args()
    raw = sys.stdin.read()
    result = {
        "kind": args.kind,
        "mode": args.mode,
        "test": args.test,
        "workers": args.workers,
        "conns": args.conns,
        "background_busy_pct": args.background_busy,
        "cpu_busy_pct": args.cpu_busy,
        **parse(raw),
    }
    if result["rps"] is None:
        result["raw_tail"] = raw[-400:]
    with open(args.out, "a") as fh:
        fh.write(json.dumps(result) + "\n")
    errors = sum(result["socket_errors"].values())
    print(
        f"  {args.test:<9} workers={args.workers} c={args.conns:<3} "
        f"{result['rps'] or 0:>8.0f} req/s  p50 {result['p50_ms']} ms  "
        f"p99 {result['p99_ms']} ms  non-2xx {result['non2xx']}  socket errors {errors}  "
        f"CPU {args.cpu_busy or 0:.0f}%"
        + (
            f"  not-valid bodies {result['bodies_not_valid']}"
            if result["bodies_not_valid"] is not None
            else ""
        )
    )


if __name__ == "__main__":
    main()
