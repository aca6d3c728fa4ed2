"""The coupon-table writes the sub-domains call (coupons.services, end of the module)."""

import pytest

from coupons import services


@pytest.mark.parametrize(
    "name", ["codebatch_staging; DROP TABLE coupons_code", "Staging", "public.codes", ""]
)
def test_codes_insert_from_staging_takes_only_a_plain_table_name(name):
    with pytest.raises(ValueError, match="Not a staging table name"):
        services.codes_insert_from_staging(
            staging_table=name, coupon_id=1, max_uses=1, expires_at=None, batch_id=None
        )
