"""The subscription state machine: which moves are legal (Kill Bill / Stripe statuses).

`incomplete` is the few seconds of a subscribe whose first charge is in flight: live
(so a second subscribe is refused) but without features; it ends `active` or `expired`.
"""

from __future__ import annotations

INCOMPLETE = "incomplete"
TRIALING = "trialing"
ACTIVE = "active"
PAST_DUE = "past_due"
CANCELLED = "cancelled"
EXPIRED = "expired"

LEGAL: dict[str, frozenset[str]] = {
    "": frozenset({INCOMPLETE, TRIALING, ACTIVE}),
    INCOMPLETE: frozenset({ACTIVE, EXPIRED}),
    TRIALING: frozenset({ACTIVE, EXPIRED, CANCELLED}),
    ACTIVE: frozenset({PAST_DUE, CANCELLED}),
    PAST_DUE: frozenset({ACTIVE, CANCELLED}),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, from_status: str, to_status: str):
        super().__init__(f"{from_status or 'new'} -> {to_status} is not a legal transition")
        self.from_status = from_status
        self.to_status = to_status


def check(from_status: str, to_status: str) -> None:
    if to_status not in LEGAL.get(from_status, frozenset()):
        raise IllegalTransition(from_status, to_status)
