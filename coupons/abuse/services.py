"""Automatic abuse actions: leaked public codes, multi-account farming, return rates.

Each finding becomes an AbuseAlert (the audit trail marketing reviews in the admin);
disabling a coupon goes through coupons.activation (the lock-and-save behind
coupons.services.coupons_set_active), so it lands in the coupon's history next to staff
edits, with the reason.

Dependencies run one way: coupons.services calls this module (identities, farming, leaks,
return rates, re-enables); this module reaches coupon data only through
coupons.selectors and coupons.activation, and never imports coupons.services.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_redis import get_redis_connection

from core import metrics, redis_guard
from coupons import activation
from coupons import selectors as coupon_selectors
from coupons.abuse.models import AbuseAlert, AlertKind, IdentityUse

logger = logging.getLogger(__name__)

LEAK_WINDOW_SECONDS = 3600


def alert_raise(
    *, kind: str, coupon_id: int, message: str, subject: str = "", details: dict | None = None
) -> AbuseAlert:
    """Record a finding; the same (kind, coupon, subject) again counts up one open row."""
    alert, created = AbuseAlert.objects.get_or_create(
        kind=kind,
        coupon_id=coupon_id,
        subject=subject,
        defaults={"message": message, "details": details or {}},
    )
    if not created:
        AbuseAlert.objects.filter(pk=alert.pk).update(
            occurrences=F("occurrences") + 1,
            message=message,
            details=details or {},
            status="open",
            updated_at=timezone.now(),
        )
        alert.refresh_from_db()
    metrics.abuse_actions.labels(kind).inc()
    return alert


def alerts_review(*, alert_ids: list[int], status: str, user) -> int:
    """Staff reviewed or dismissed alerts (admin): the review columns only, so a finding
    counted up meanwhile (`occurrences`) is never written back."""
    return AbuseAlert.objects.filter(pk__in=alert_ids).update(
        status=status, reviewed_by=user, reviewed_at=timezone.now(), updated_at=timezone.now()
    )


# --- leaked public codes ----------------------------------------------------------------


def _leak_key(code_id: int) -> str:
    return f"abuse:leak:{code_id}"


def leak_note(
    *, coupon_id: int, code_id: int, code: str, customer_id: str, threshold: int | None
) -> bool:
    """After a public code was reserved: count its unique customers over the last hour
    (a Redis sorted set: member = customer, score = time) and disable the coupon when
    there are more than its threshold. Returns whether it was disabled.

    Called after commit, outside the checkout transaction; Redis down -> not counted
    (logged)."""
    limit = settings.ABUSE_LEAK_THRESHOLD if threshold is None else threshold
    if not redis_guard.available():
        return False
    now = time.time()
    key = _leak_key(code_id)
    started = time.monotonic()
    try:
        pipe = get_redis_connection("default").pipeline(transaction=True)
        pipe.zadd(key, {customer_id: now})
        pipe.zremrangebyscore(key, "-inf", now - LEAK_WINDOW_SECONDS)
        pipe.zcard(key)
        pipe.expire(key, LEAK_WINDOW_SECONDS)
        unique = pipe.execute()[2]
    except Exception:  # detection must never fail a checkout
        logger.warning("leak detection skipped for %s: Redis unavailable", code, exc_info=True)
        redis_guard.pause()
        return False
    redis_guard.note(started)
    if unique <= limit:
        return False
    return coupon_auto_disable(
        coupon_id=coupon_id,
        kind=AlertKind.LEAKED_CODE,
        reason=f"Leaked code: public code {code} redeemed by {unique} unique customers "
        f"within an hour (threshold {limit}).",
        details={"code": code, "unique_customers": unique, "threshold": limit},
    )


def coupon_auto_disable(*, coupon_id: int, kind: str, reason: str, details: dict) -> bool:
    """Stop a coupon automatically, say why on the coupon, alert and email marketing.
    Only the first caller acts (a leak keeps counting while the disable commits)."""
    with transaction.atomic():
        changed = activation.coupons_disable(
            coupon_ids=[coupon_id],
            reason=f"Automatic: {reason}",
            disabled_reason=reason,
        )
        if not changed:
            return False
        alert = alert_raise(kind=kind, coupon_id=coupon_id, message=reason[:300], details=details)
        # Queued after commit: the SMTP server's speed or failure never reaches the
        # checkout that tripped the detector.
        alert_id, occurrence = alert.pk, alert.occurrences
        transaction.on_commit(lambda: _queue_email(alert_id, occurrence))
    logger.warning("coupon %s auto-disabled: %s", coupon_id, reason)
    return True


def reenabled(*, coupon_ids: list[int], who: str = "") -> None:
    """Staff turned automatically disabled coupons back on (in their transaction): the
    leak alerts count as reviewed, the trail says who, and the leak counts start over
    after commit (else the next redemption would find the old hour's customers and
    disable the coupon again at once)."""
    who = who or "staff"
    for coupon_id in coupon_ids:
        AbuseAlert.objects.filter(
            coupon_id=coupon_id, kind=AlertKind.LEAKED_CODE, status="open"
        ).update(status="reviewed", reviewed_at=timezone.now())
        alert_raise(
            kind=AlertKind.REENABLED,
            coupon_id=coupon_id,
            subject=timezone.now().isoformat(),
            message=f"Re-enabled by {who}",
        )
    transaction.on_commit(lambda: _leak_reset(coupon_ids))


def _leak_reset(coupon_ids: list[int]) -> None:
    code_ids = coupon_selectors.public_code_ids_for_coupons(coupon_ids)
    try:
        get_redis_connection("default").delete(*[_leak_key(k) for k in code_ids] or ["-"])
    except Exception:  # the window ends by itself within the hour
        logger.warning("could not reset the leak counts of coupons %s", coupon_ids)


def _queue_email(alert_id: int, occurrence: int) -> None:
    from coupons.abuse import tasks

    try:
        tasks.alert_email.delay(alert_id, occurrence)
    except Exception:  # the alert row is the record; mail is a courtesy
        logger.exception("could not queue the email about alert %s", alert_id)


def alert_email(*, alert_id: int, occurrence: int) -> bool:
    """Email marketing about one occurrence of an alert, at most once: the occurrence is
    claimed by a conditional UPDATE first and given back if sending fails (the task
    retries). Returns whether this call sent it."""
    claimed = AbuseAlert.objects.filter(pk=alert_id, emailed_occurrence__lt=occurrence).update(
        emailed_occurrence=occurrence
    )
    if not claimed:
        return False
    alert = AbuseAlert.objects.select_related("coupon").get(pk=alert_id)
    coupon = alert.coupon
    body = (
        f"{alert.get_kind_display()} for coupon {coupon.code}.\n\n{alert.message}\n\n"
        "Review it in the admin: Abuse protection > Abuse alerts; the coupon page shows "
        "why it was disabled and can re-enable it."
    )
    try:
        send_mail(
            f"[growth-engine] {alert.get_kind_display()}: {coupon.code}",
            body,
            settings.DEFAULT_FROM_EMAIL,
            settings.MARKETING_ALERT_EMAIL,
        )
    except Exception:
        AbuseAlert.objects.filter(pk=alert_id, emailed_occurrence=occurrence).update(
            emailed_occurrence=occurrence - 1
        )
        raise
    return True


# --- multi-account farming --------------------------------------------------------------


def identity_shared(
    *, coupon_id: int, digests: dict[str, str], customer_pk: int | None
) -> list[tuple]:
    """Live redemptions of this coupon by OTHER customers with any of these identities:
    [(kind, digest, their customer id, redemption id)]."""
    if not digests:
        return []
    return coupon_selectors.redemptions_sharing_identity(
        coupon_id=coupon_id, digests=list(digests.values()), customer_pk=customer_pk
    )


def identity_record(*, redemptions, digests: dict[str, str]) -> None:
    """Keep the hashed identities of these redemptions (same transaction as the apply)."""
    IdentityUse.objects.bulk_create(
        [
            IdentityUse(
                coupon_id=x.coupon_id,
                redemption_id=x.pk,
                customer_id=x.customer_id,
                kind=kind,
                digest=d,
            )
            for x in redemptions
            for kind, d in digests.items()
        ]
    )


def farming_flag(*, coupon_id: int, customer_id: str | None, shared: list) -> None:
    """One identity used by several accounts on a first-purchase or once-per-customer
    coupon: one open alert per identity, counting up once per offending apply."""
    by_identity: dict[tuple[str, str], set[str]] = {}
    for kind, digest, other, _redemption in shared:
        by_identity.setdefault((kind, digest), set()).update(c for c in (other, customer_id) if c)
    for (kind, digest), customers in by_identity.items():
        alert_raise(
            kind=AlertKind.MULTI_ACCOUNT,
            coupon_id=coupon_id,
            subject=digest[:64],
            message=f"The same {kind} was used by several customers for this coupon",
            details={"identity": kind, "customers": sorted(customers)},
        )


# --- return rate ------------------------------------------------------------------------


def return_rate_check(*, coupon_ids) -> list[int]:
    """After returns were recorded: flag each coupon whose return rate (returned /
    confirmed orders) is above ABUSE_RETURN_RATE_THRESHOLD once it has at least
    ABUSE_RETURN_MIN_ORDERS confirmed orders. Returns the coupons flagged."""
    flagged = []
    for coupon_id in sorted(set(coupon_ids)):
        confirmed, returned = coupon_selectors.redemption_return_counts(coupon_id)
        if confirmed < settings.ABUSE_RETURN_MIN_ORDERS:
            continue
        rate = returned / confirmed
        if rate > settings.ABUSE_RETURN_RATE_THRESHOLD:
            alert_raise(
                kind=AlertKind.RETURN_RATE,
                coupon_id=coupon_id,
                message=f"Return rate {rate:.0%} ({returned} of {confirmed} orders) is "
                f"above {settings.ABUSE_RETURN_RATE_THRESHOLD:.0%}",
                details={"confirmed": confirmed, "returned": returned, "rate": round(rate, 4)},
            )
            flagged.append(coupon_id)
    return flagged
