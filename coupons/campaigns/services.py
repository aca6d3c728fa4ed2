"""Flash-sale writes: create and stop campaigns, claim a unit, expire unredeemed claims.

The claim (SPEC rule 1, API.md "Flash-sale claims"):
  1. One read answers the common cases without writing: this customer already holds a
     claim (a retry, a refresh, a second tab: the same claim back, 200, even when sold
     out or ended), the campaign is not live (422), or it is sold out (409).
  2. Otherwise, in one durable transaction: insert the token code (a new row nobody else
     can see, so it locks nothing that matters), then ONE statement in which the claim
     insert decides: `INSERT ... ON CONFLICT (campaign, customer) DO NOTHING` and, only if
     it inserted, the conditional `UPDATE campaign SET claimed = claimed + 1 WHERE
     claimed < inventory` (and the window still open). Nothing inserted -> a concurrent
     claim by the same customer won: roll back, return theirs. Inserted but no unit ->
     roll back (sold out or just stopped). The campaign row, the hot one, is locked from
     that statement to the commit: one round trip.
  The opposite order, incrementing first and inserting with ON CONFLICT DO NOTHING in the
  same statement, counts every retry as a sale (see tests/test_race.py).

Lock order, everywhere in this app: claims, then codes, then the campaign (each by pk).
The claim path inserts the claim before it updates the campaign; the expiry locks
claims, then their codes (apply locks coupon then code and never a claim or campaign),
then updates the campaign. No two paths wait on each other in opposite orders.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from core import crockford
from core.errors import NotFound
from core.idempotency import create_once
from coupons import locks as coupon_locks
from coupons import selectors as coupon_selectors
from coupons import services as coupon_services
from coupons.engine import reasons as r

from .models import Campaign, CampaignStatus, ClaimStatus, campaign_status

TOKEN_PREFIX = "FS"  # noqa: S105 - a label, not a secret
TOKEN_SYMBOLS = 26  # 130 random bits from the CSPRNG (core/crockford.py)


class CampaignNotFoundError(NotFound):
    def __init__(self, campaign_id):
        super().__init__("campaign_not_found", f"No campaign '{campaign_id}'.")


class ClaimRejectedError(Exception):
    """A business rejection of a claim (sold_out, campaign_not_live): not an error body
    but the claim endpoint's own `{"claimed": false, "reason"}` answer, which the view
    shapes and gives its status."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
        self.message = r.MESSAGES[reason]


@dataclass(frozen=True)
class ClaimView:
    """A claim as the API shows it (status "redeemed" as soon as the token holds a use)."""

    claim_id: uuid.UUID
    token: str
    status: str
    expires_at: datetime
    created: bool = False


def new_token() -> str:
    """ "FS" + 26 Crockford symbols: 130 bits from `secrets`, nothing derived from the
    customer, the campaign or the time, stored in canonical form (what resolve_codes
    finds however the shopper types it)."""
    return TOKEN_PREFIX + crockford.random_symbols(TOKEN_SYMBOLS)


# --- campaigns ----------------------------------------------------------------------------


def _check_window(*, starts_at, ends_at, inventory, claim_hold_minutes) -> None:
    errors: dict[str, list[str]] = {}
    if ends_at <= starts_at:
        errors["ends_at"] = ["ends_at must be after starts_at."]
    if inventory is None or inventory < 1:
        errors["inventory"] = ["At least 1 unit."]
    if not 1 <= claim_hold_minutes <= 1440:
        errors["claim_hold_minutes"] = ["Between 1 and 1440 minutes."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def campaign_create(
    *,
    name: str,
    inventory: int,
    starts_at: datetime,
    ends_at: datetime,
    discount: dict,
    claim_hold_minutes: int = 15,
    idempotency_key: str = "",
    idempotency_principal: str = "",
    request_fingerprint: str = "",
) -> Campaign:
    """Create the campaign and its coupon (the discount) without a public code: the
    discount is reachable only through claim tokens. `discount` holds Coupon model fields
    (coupons.api.admin_serializers.definition_to_fields); its `code` is ours to choose.
    Not durable: the Django admin calls this inside its own transaction.

    With an `idempotency_key` (API calls), the campaign that key already created (this
    caller's) is returned instead of a new one; the key is stored with the row, and its
    unique constraint decides between concurrent first attempts (the loser's coupon is
    rolled back with its savepoint). The same key with another request
    (`request_fingerprint`) is 409 idempotency_key_reused."""

    def create(idempotency: dict) -> Campaign:
        _check_window(
            starts_at=starts_at,
            ends_at=ends_at,
            inventory=inventory,
            claim_hold_minutes=claim_hold_minutes,
        )
        campaign_id = uuid.uuid4()
        fields = {k: v for k, v in discount.items() if k not in ("code", "auto_apply")}
        fields["code"] = f"FLASH-{campaign_id.hex[:16].upper()}"
        fields.setdefault("description", name[:200])
        coupon = coupon_services.coupon_create(fields=fields, with_public_code=False)
        campaign = Campaign(
            id=campaign_id,
            name=name,
            coupon=coupon,
            inventory=inventory,
            starts_at=starts_at,
            ends_at=ends_at,
            claim_hold_minutes=claim_hold_minutes,
            **idempotency,
        )
        # The key's uniqueness is the insert's to decide (a concurrent first attempt).
        campaign.full_clean(exclude=["coupon", "idempotency_key"])
        campaign.save(force_insert=True)
        return campaign

    campaign, _ = create_once(
        Campaign.objects.all(),
        principal=idempotency_principal,
        key=idempotency_key,
        fingerprint=request_fingerprint,
        create=create,
    )
    return campaign


def campaign_update(*, campaign: Campaign) -> Campaign:
    """Save an edited campaign (admin): the window and hold are checked first, and the
    inventory may not go below the units already claimed (the check constraint would)."""
    _check_window(
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        inventory=campaign.inventory,
        claim_hold_minutes=campaign.claim_hold_minutes,
    )
    with transaction.atomic():
        claimed = (
            Campaign.objects.select_for_update(no_key=True)
            .values_list("claimed", flat=True)
            .get(pk=campaign.pk)
        )
        if campaign.inventory < claimed:
            raise ValidationError({"inventory": [f"{claimed} units are already claimed."]})
        Campaign.objects.filter(pk=campaign.pk).update(
            name=campaign.name,
            inventory=campaign.inventory,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            claim_hold_minutes=campaign.claim_hold_minutes,
            updated_at=timezone.now(),
        )
    campaign.refresh_from_db()
    return campaign


def campaigns_stop(*, campaign_ids: list) -> int:
    """The stop button: no new claims from now on (existing tokens stay valid until they
    expire: those customers were promised the discount). Stopping twice keeps the first
    time."""
    now = timezone.now()
    return Campaign.objects.filter(pk__in=campaign_ids, stopped_at__isnull=True).update(
        stopped_at=now, updated_at=now
    )


# --- claim --------------------------------------------------------------------------------

# The insert decides; the counter moves only when a claim row was inserted.
_CLAIM_SQL = """
WITH ins AS (
    INSERT INTO campaigns_claim (id, campaign_id, customer_id, code_id, status, expires_at,
                                 created_at)
    VALUES (%(id)s, %(campaign_id)s, %(customer_id)s, %(code_id)s, 'claimed',
            %(expires_at)s, %(now)s)
    ON CONFLICT (campaign_id, customer_id) DO NOTHING
    RETURNING id),
unit AS (
    UPDATE campaigns_campaign SET claimed = claimed + 1, updated_at = %(now)s
     WHERE id = %(campaign_id)s AND claimed < inventory AND stopped_at IS NULL
       AND starts_at <= %(now)s AND ends_at > %(now)s
       AND EXISTS (SELECT 1 FROM ins)
    RETURNING id)
SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM unit)
"""


class _ClaimLost(Exception):  # control flow: roll back and re-read
    def __init__(self, inserted: bool):
        super().__init__()
        self.inserted = inserted


def _view(claim_id, status, expires_at, token, uses, *, created=False) -> ClaimView:
    if status == ClaimStatus.CLAIMED and uses:
        status = ClaimStatus.REDEEMED  # the token holds a reserved or confirmed use
    return ClaimView(
        claim_id=claim_id, token=token, status=status, expires_at=expires_at, created=created
    )


def _state(campaign_id, customer_id: str):
    row = coupon_selectors.campaign_claim_state(campaign_id, customer_id)
    if row is None:
        raise CampaignNotFoundError(campaign_id)
    return row


def campaign_claim(*, campaign_id, customer_id: str) -> ClaimView:
    """Claim one unit of a campaign for a customer (the storefront's external id).

    Returns the claim (`created` tells 201 from 200) or raises ClaimRejectedError.
    A customer holds at most one claim per campaign, whatever its status: one whose
    claim expired gets that claim back (status "expired"), not a second unit.
    """
    (
        coupon_id,
        inventory,
        claimed,
        starts_at,
        ends_at,
        stopped_at,
        hold_minutes,
        claim_id,
        status,
        expires_at,
        token,
        uses,
    ) = _state(campaign_id, customer_id)
    if claim_id is not None:
        return _view(claim_id, status, expires_at, token, uses)
    now = timezone.now()
    state = campaign_status(
        starts_at=starts_at,
        ends_at=ends_at,
        stopped_at=stopped_at,
        claimed=claimed,
        inventory=inventory,
        now=now,
    )
    if state in (CampaignStatus.SCHEDULED, CampaignStatus.ENDED):
        raise ClaimRejectedError(r.CAMPAIGN_NOT_LIVE)
    if state == CampaignStatus.SOLD_OUT:
        raise ClaimRejectedError(r.SOLD_OUT)  # read only: a sold-out rush writes nothing
    customer_pk = coupon_selectors.customer_pk_ensure(customer_id)
    claim_id, token = uuid.uuid4(), new_token()
    expires_at = now + timedelta(minutes=hold_minutes)
    try:
        _claim_insert(
            campaign_id=campaign_id,
            coupon_id=coupon_id,
            customer_pk=customer_pk,
            claim_id=claim_id,
            token=token,
            expires_at=expires_at,
            now=now,
        )
    except _ClaimLost as lost:
        row = _state(campaign_id, customer_id)
        if row[7] is not None:  # the same customer's concurrent claim won: theirs it is
            return _view(row[7], row[8], row[9], row[10], row[11])
        state = campaign_status(
            starts_at=row[3], ends_at=row[4], stopped_at=row[5], claimed=row[2], inventory=row[1]
        )
        if lost.inserted and state == CampaignStatus.LIVE:
            state = CampaignStatus.SOLD_OUT  # the last unit went between the two reads
        raise ClaimRejectedError(
            r.SOLD_OUT if state == CampaignStatus.SOLD_OUT else r.CAMPAIGN_NOT_LIVE
        ) from None
    return ClaimView(
        claim_id=claim_id,
        token=token,
        status=ClaimStatus.CLAIMED,
        expires_at=expires_at,
        created=True,
    )


@transaction.atomic(durable=True)
def _claim_insert(
    *, campaign_id, coupon_id: int, customer_pk: int, claim_id, token: str, expires_at, now
) -> None:
    code_id = coupon_services.code_create_for_claim(
        coupon_id=coupon_id, code=token, expires_at=expires_at, customer_pk=customer_pk, now=now
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "id": claim_id,
                "campaign_id": campaign_id,
                "customer_id": customer_pk,
                "code_id": code_id,
                "expires_at": expires_at,
                "now": now,
            },
        )
        inserted, unit = cursor.fetchone()
    if not (inserted and unit):
        raise _ClaimLost(inserted)  # rolls back the token and, if inserted, the claim


# --- expiry -------------------------------------------------------------------------------

_PICK_SQL = """
SELECT cl.id, cl.campaign_id, cl.code_id
  FROM campaigns_claim cl
 WHERE cl.status = 'claimed' AND cl.expires_at < %s AND cl.id > %s
 ORDER BY cl.id
 LIMIT %s
   FOR UPDATE SKIP LOCKED
"""
_FLIP_SQL = """
UPDATE campaigns_claim SET status = %s, released_at = %s
 WHERE id = ANY(%s) AND status = 'claimed'
RETURNING id, campaign_id, code_id
"""


def claims_expire_stale(*, batch_size: int = 500, now: datetime | None = None) -> int:
    """Give back the units of claims past their hold whose token was not used (beat job,
    every minute). Returns the number of units given back. Safe to run concurrently and
    to re-run: the conditional `status = 'claimed'` flip decides, under row locks.

    Per claim past its hold: token with a confirmed redemption -> `redeemed` (the unit is
    sold); with only a reserved one -> left alone (the order may still pay; a later run
    decides once it is confirmed, released or expired); no live use -> `expired`, the
    token is deactivated and the unit returns to the inventory.
    """
    now = now or timezone.now()
    total, after = 0, uuid.UUID(int=0)
    while True:
        returned, last = _expire_batch(after=after, batch_size=batch_size, now=now)
        if last is None:
            return total
        total += returned
        after = last


@transaction.atomic(durable=True)
def _expire_batch(*, after, batch_size: int, now) -> tuple[int, uuid.UUID | None]:
    with connection.cursor() as cursor:
        cursor.execute(_PICK_SQL, [now, after, batch_size])  # 1. claims (skip busy ones)
        picked = cursor.fetchall()
        if not picked:
            return 0, None
        code_ids = sorted(code_id for _, _, code_id in picked)
        coupon_locks.codes_lock_bare(code_ids)  # 2. codes: waits for a running apply
        held = coupon_selectors.code_holds_get(code_ids)  # code id -> confirmed?
        redeemed = [cid for cid, _, code_id in picked if held.get(code_id) is True]
        expired = [cid for cid, _, code_id in picked if code_id not in held]
        if redeemed:
            cursor.execute(_FLIP_SQL, [ClaimStatus.REDEEMED.value, None, redeemed])
        flipped = []
        if expired:
            cursor.execute(_FLIP_SQL, [ClaimStatus.EXPIRED.value, now, expired])
            flipped = cursor.fetchall()
        if flipped:
            # The tokens stop; their cached terms are dropped after the commit.
            coupon_services.codes_deactivate(code_ids=[code_id for _, _, code_id in flipped])
            per_campaign = Counter(campaign_id for _, campaign_id, _ in flipped)
            for campaign_id in sorted(per_campaign):  # 3. the campaign(s), by pk
                cursor.execute(
                    "UPDATE campaigns_campaign SET claimed = claimed - %s,"
                    " updated_at = %s WHERE id = %s",
                    [per_campaign[campaign_id], now, campaign_id],
                )
    return len(flipped), max(cid for cid, _, _ in picked)
