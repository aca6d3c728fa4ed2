-- Auto-apply promotions for the promotions benchmark (bench/promotions.py), set-wise.
--
--   psql -v n=1000 -f bench/promotions_seed.sql     (n = 0 only removes them)
--
-- Every run first deletes the previous bench promotions (codes 'BP-AUTO-%', with their
-- codes and any redemptions), then inserts n active auto-apply USD promotions, each with
-- a public code of the same string (what coupons/promotions.py's _CODES_SQL looks up).
-- Promotion i is the same for every n (its fields are hashes of i), so the set for
-- n = 1,000 is the first 1,000 of the set for n = 10,000.
--
-- Mix (shares of n):
--   type   44% percentage (5-30%, 60% of them capped at $10-$50), 26% fixed ($2-$15),
--          14% tiered (2 tiers on the eligible spend), 11% free shipping, 5% bogo
--          (buy 1 or 2, get 1 free or half price)
--   scope  76% one of 50 categories (cat-01..cat-50), 20% 1-3 SKUs of a 2,000-SKU
--          catalogue (BSKU-0001..BSKU-2000; SKU k is in category ((k-1) % 50) + 1),
--          4% site-wide with a minimum cart of $0-$2,000 (half of them $400 or less);
--          15% of the restricted ones also have a minimum cart ($50-$500)
--   stack  40% stackable; stack groups bp-sale / bp-clearance / bp-loyalty / the type's
--   limits 20% max_uses_total (2% of all sold out: uses = limit), 10% max_uses_per_user,
--          4% premium_members only, 2% first purchase only: these need live counters
--   other  10% priority 1-5; valid from yesterday, half until in 30 days, half open-ended
--
-- Also upserts the three typed codes every request sends (not auto-apply, kept between
-- runs): BP-SAVE15 (15%, cap $40, stackable), BP-FIVE ($5 off, stackable, group
-- bp-typed, max_uses_total 1,000,000: a live counter read) and BP-SHIP (free shipping).
-- And 2,000 customers bp-u-1..bp-u-2000 (every 10th a premium member, every 20th without
-- orders yet) for the requests' customer ids, so live state finds a stored customer.
-- The caller tells the running processes (promotions.changed()); a psql run alone does
-- not, so run it before gunicorn starts or bump the version key afterwards.
\set ON_ERROR_STOP on
\if :{?n}
\else
\set n 1000
\endif

BEGIN;

DELETE FROM coupons_redemption
 WHERE coupon_id IN (SELECT id FROM coupons_coupon WHERE code LIKE 'BP-AUTO-%');
DELETE FROM coupons_code
 WHERE coupon_id IN (SELECT id FROM coupons_coupon WHERE code LIKE 'BP-AUTO-%');
DELETE FROM coupons_coupon WHERE code LIKE 'BP-AUTO-%';

WITH g AS (
    SELECT i,
           hashint4(i) & 2147483647           AS h_type,
           hashint4(i + 1000000) & 2147483647 AS h_scope,
           hashint4(i + 2000000) & 2147483647 AS h_where,
           hashint4(i + 3000000) & 2147483647 AS h_min,
           hashint4(i + 4000000) & 2147483647 AS h_value,
           hashint4(i + 5000000) & 2147483647 AS h_stack,
           hashint4(i + 6000000) & 2147483647 AS h_limit
      FROM generate_series(1, :n) AS i
), p AS (
    SELECT g.*,
           CASE WHEN h_type % 100 < 44 THEN 'percentage'
                WHEN h_type % 100 < 70 THEN 'fixed'
                WHEN h_type % 100 < 84 THEN 'tiered'
                WHEN h_type % 100 < 95 THEN 'free_shipping'
                ELSE 'bogo' END AS type,
           CASE WHEN h_scope % 100 < 76 THEN 'category'
                WHEN h_scope % 100 < 96 THEN 'sku'
                ELSE 'site' END AS scope,
           h_where % 2000 AS sku0,              -- first SKU (0-based); others +50, +100
           1 + (h_where / 2000) % 3 AS sku_count
      FROM g
)
INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    bogo_buy, bogo_get, bogo_percent_bp, min_cart_minor,
    eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
SELECT
    'BP-AUTO-' || lpad(i::text, 5, '0'),
    'Bench promotion ' || i,
    type,
    'USD',
    CASE WHEN type = 'percentage' THEN 500 + (h_value % 6) * 500 END,
    CASE WHEN type = 'fixed' THEN 200 + (h_value % 14) * 100 END,
    CASE WHEN type = 'percentage' AND h_value % 10 < 6 THEN 1000 + (h_value / 10 % 5) * 1000 END,
    CASE WHEN type = 'tiered' THEN jsonb_build_array(
             jsonb_build_object('threshold_minor', 2000 + (h_value % 4) * 1000,
                                'discount_minor', 200 + (h_value / 4 % 4) * 100),
             jsonb_build_object('threshold_minor', 3 * (2000 + (h_value % 4) * 1000),
                                'discount_minor', 4 * (200 + (h_value / 4 % 4) * 100)))
         ELSE '[]'::jsonb END,
    CASE WHEN type = 'bogo' THEN 1 + h_value % 2 END,
    CASE WHEN type = 'bogo' THEN 1 END,
    CASE WHEN type = 'bogo' AND h_value / 2 % 2 = 1 THEN 5000 END,
    CASE WHEN scope = 'site'
         THEN (ARRAY[0, 5000, 10000, 25000, 40000, 50000, 75000, 100000, 150000, 200000])[h_min % 10 + 1]
         WHEN h_min % 100 < 15
         THEN (ARRAY[5000, 10000, 25000, 50000])[h_min / 100 % 4 + 1] END,
    CASE WHEN scope = 'category'
         THEN ARRAY['cat-' || lpad((h_where % 50 + 1)::text, 2, '0')]::varchar[]
         ELSE '{}' END,
    CASE WHEN scope = 'sku'
         THEN ARRAY(SELECT 'BSKU-' || lpad(((sku0 + 50 * k) % 2000 + 1)::text, 4, '0')
                      FROM generate_series(0, sku_count - 1) AS k)::varchar[]
         ELSE '{}' END,
    '{}',
    CASE WHEN h_limit % 100 < 4 THEN ARRAY['premium_members']::varchar[] ELSE '{}' END,
    h_limit % 100 BETWEEN 4 AND 5,
    CASE WHEN h_limit / 100 % 100 < 20 THEN 1000 + h_limit % 50000 END,
    CASE WHEN h_limit / 10000 % 100 < 10 THEN 1 + h_limit % 3 END,
    now() - interval '1 day',
    CASE WHEN h_stack / 1000 % 2 = 0 THEN now() + interval '30 days' END,
    true,
    h_stack % 100 < 40,
    (ARRAY['bp-sale', 'bp-clearance', 'bp-loyalty', '', ''])[h_stack / 100 % 5 + 1],
    true,
    CASE WHEN h_stack / 500 % 10 = 0 THEN 1 + h_stack % 5 ELSE 0 END,
    -- 2% sold out (a tenth of the limited ones): the live counter rejects them.
    CASE WHEN h_limit / 100 % 100 < 2 THEN 1000 + h_limit % 50000 ELSE 0 END,
    1,
    0, 'flag', false, '', now(), now()
FROM p;

-- The typed codes: (re)defined on every run so an edited row cannot skew the benchmark.
INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    min_cart_minor, eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
VALUES
    ('BP-SAVE15', '15% off, max $40', 'percentage', 'USD', 1500, NULL, 4000, '[]',
     NULL, '{}', '{}', '{}', '{}', false, NULL, NULL, NULL, NULL,
     true, true, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('BP-FIVE', '$5 off', 'fixed', 'USD', NULL, 500, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, 1000000, NULL, NULL, NULL,
     true, true, 'bp-typed', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('BP-SHIP', 'Free shipping', 'free_shipping', 'USD', NULL, NULL, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, NULL, NULL, NULL, NULL,
     true, true, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now())
ON CONFLICT (code) DO UPDATE SET
    type = EXCLUDED.type, percent_bp = EXCLUDED.percent_bp,
    amount_minor = EXCLUDED.amount_minor, cap_minor = EXCLUDED.cap_minor, tiers = '[]',
    min_cart_minor = NULL, eligible_categories = '{}', eligible_skus = '{}',
    excluded_skus = '{}', eligible_segments = '{}', first_purchase_only = false,
    max_uses_total = EXCLUDED.max_uses_total, max_uses_per_user = NULL,
    valid_from = NULL, valid_to = NULL, active = true, stackable = true,
    stack_group = EXCLUDED.stack_group, auto_apply = false, uses = 0, budget_used_minor = 0,
    version = coupons_coupon.version + 1, updated_at = now();

-- One public code per promotion and typed coupon, the same string (as coupon_create).
INSERT INTO coupons_code (code, max_uses, uses, expires_at, active, created_at, coupon_id,
                          customer_id)
SELECT c.code, NULL, 0, NULL, true, now(), c.id, NULL
  FROM coupons_coupon c
 WHERE c.code LIKE 'BP-%'
   AND NOT EXISTS (SELECT 1 FROM coupons_code k WHERE k.code = c.code)
ON CONFLICT (code) DO NOTHING;
UPDATE coupons_code SET max_uses = NULL, expires_at = NULL, active = true,
                        customer_id = NULL, uses = 0
 WHERE code IN ('BP-SAVE15', 'BP-FIVE', 'BP-SHIP');

INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
SELECT 'bp-u-' || i,
       CASE WHEN i % 10 = 0 THEN ARRAY['premium_members']::varchar[] ELSE '{}' END,
       CASE WHEN i % 20 = 1 THEN 0 ELSE 1 + i % 7 END, now() - interval '60 days'
  FROM generate_series(1, 2000) AS i
ON CONFLICT (external_id) DO NOTHING;

COMMIT;
ANALYZE coupons_coupon;
ANALYZE coupons_code;
