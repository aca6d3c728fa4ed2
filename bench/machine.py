"""How busy the machine is, for the benchmarks that report other processes' load next
to their numbers (the same counters as bench/run.sh's cpu_mark)."""

from __future__ import annotations


def cpu_mark() -> tuple[int, int]:
    """Machine-wide (total, idle) jiffies from /proc/stat (idle includes iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def cpu_busy_since(mark: tuple[int, int]) -> int:
    """Percent of all CPUs busy since `mark` (a cpu_mark())."""
    total, idle = cpu_mark()
    dt, di = total - mark[0], idle - mark[1]
    return round(100 * (dt - di) / dt) if dt > 0 else 0
