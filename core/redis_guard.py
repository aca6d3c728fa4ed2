"""Skip optional Redis work for a moment after Redis was slow.

A frozen Redis (accepting connections, never answering) costs the socket timeout, 0.25 s,
on every call. Work that checkout can do without (the promotions version read, abuse rate
limits, leak counting) asks `available()` first; the first slow or failed call pauses
it for PAUSE_SECONDS in this process, so a request pays the timeout at most once a second
instead of once per call.
"""

from __future__ import annotations

import time

SLOW_SECONDS = 0.1  # a call this slow means Redis is not answering
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
