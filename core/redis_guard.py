"""Skip optional Redis work for a moment after Redis was slow.

A frozen Redis (accepting connections, never answering) costs the socket timeout, 0.25 s,
on every call. Work that checkout can do without (the promotions version read, abuse rate
limits, leak counting) asks `available()` first; the first slow or failed call pauses
it for PAUSE_SECONDS in this process, so a request pays the timeout at most once a second
instead of once per call.
"""

from __future__ import annotations

import time

# A call this slow ran into the socket timeout (0.25 s, CACHES): Redis is not answering.
# Kept just under the timeout, not lower: a call that was merely slow (a busy process, a
# latency blip) should not switch off the abuse limits and leak counting for a second.
SLOW_SECONDS = 0.2
PAUSE_SECONDS = 1.0

_paused_until = 0.0


def available() -> bool:
    return time.monotonic() >= _paused_until


def pause() -> None:
    global _paused_until
    _paused_until = time.monotonic() + PAUSE_SECONDS


def note(started: float) -> bool:
    """After a call that started at `started` (monotonic): pause if it was slow. Returns
    whether it was."""
    if time.monotonic() - started > SLOW_SECONDS:
        pause()
        return True
    return False


def reset() -> None:
    """Forget a pause (tests)."""
    global _paused_until
    _paused_until = 0.0
