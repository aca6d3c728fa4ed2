"""Input fields every app's API shares: times within what the database and Python can
both hold, and money amounts read as decimals (API.md conventions)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# The largest value of a PositiveIntegerField column: input beyond it is a 400 here, never
# a database error.
MAX_POSITIVE_INT = 2**31 - 1
# Times the database and every site time zone can hold: PostgreSQL stores years past
# 9999 that Python cannot read back, so such a row would break every later read.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=dt.UTC)


@extend_schema_field(OpenApiTypes.STR)
class ValidityField(serializers.Field):
    """ISO datetime, or a bare date: as a start the start of that day, as an end
    (`end_of_day`) through the end of that day (API.md conventions), in the site's time
    zone. Returned in UTC (any offset Python reads, up to 23:59, is the same instant) and
    between 1970 and 9999 (EARLIEST, LATEST)."""

    def __init__(self, *, end_of_day: bool, **kw):
        self.end_of_day = end_of_day
        super().__init__(**kw)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Enter an ISO 8601 date or datetime.")
        text = data.strip().upper()  # RFC 3339 allows a lower-case "t" and "z"
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                moment = dt.datetime.combine(day, dt.time.max if self.end_of_day else dt.time.min)
            else:
                moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise serializers.ValidationError("Enter an ISO 8601 date or datetime.") from None
        try:
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            moment = moment.astimezone(dt.UTC)  # PostgreSQL refuses offsets past 15:59
        except (OverflowError, ValueError):  # past year 9999 (or before 1) in UTC
            moment = None
        if moment is None or not EARLIEST <= moment <= LATEST:
            raise serializers.ValidationError("Enter a time between 1970 and 9999.")
        return moment

    def to_representation(self, value):
        return value.isoformat() if value else None


class MoneyIn(serializers.DecimalField):
    """A decimal string or JSON number (a Decimal from our parser, never a float); the
    currency's own places are checked where the currency is known (core.money)."""

    def __init__(self, **kw):
        kw.setdefault("max_digits", 16)
        kw.setdefault("decimal_places", 3)
        kw.setdefault("min_value", Decimal(0))
        super().__init__(**kw)


class TextField(serializers.CharField):
    """A CharField that takes only JSON strings: DRF's own turns 0 or true into "0" and
    "True", which accepts a body the schema says is invalid."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
