-- Bench data, idempotent (bench/run.sh runs it every time; a re-run changes nothing).
-- 100,000 active coupons of mixed types, each with one public code of the same string,
-- inserted set-wise (INSERT ... SELECT generate_series): a few seconds, not minutes.
-- Plus the three named coupons the runs use:
--   BENCH25   25% off, cap $50.00, no limits          -> validate (no live-state query)
--   HOT1000   10% off, max_uses_total = 1000          -> the HTTP apply race
--   PGHOT     10% off, max_uses_total = 2,000,000,000 -> pgbench (never saturates)
\set ON_ERROR_STOP on
BEGIN;

INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    bogo_buy, bogo_get, bogo_percent_bp, min_cart_minor,
    eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
SELECT
    'BC' || lpad(i::text, 6, '0'),
    'bench coupon ' || i,
    CASE WHEN i % 20 < 11 THEN 'percentage'
         WHEN i % 20 < 18 THEN 'fixed'
         WHEN i % 20 = 18 THEN 'free_shipping'
         ELSE 'tiered' END,
    'USD',
    CASE WHEN i % 20 < 11 THEN 500 + (i % 10) * 250 END,               -- 5% .. 27.5%
    CASE WHEN i % 20 BETWEEN 11 AND 17 THEN 500 + (i % 9) * 500 END,   -- $5 .. $45
    CASE WHEN i % 20 < 11 AND i % 2 = 0 THEN 2500 + (i % 4) * 2500 END,
    CASE WHEN i % 20 = 19
         THEN '[{"threshold_minor": 5000, "discount_minor": 500},
                {"threshold_minor": 10000, "discount_minor": 1500}]'::jsonb
         ELSE '[]'::jsonb END,
    NULL, NULL, NULL,
    CASE WHEN i % 5 = 0 THEN 2000 + (i % 7) * 1000 END,
    CASE WHEN i % 7 = 0 THEN ARRAY['electronics', 'home']::varchar[] ELSE '{}' END,
    '{}', '{}',
    CASE WHEN i % 11 = 0 THEN ARRAY['premium_members']::varchar[] ELSE '{}' END,
    i % 13 = 0,
    CASE WHEN i % 3 = 0 THEN 100 + (i % 1000) END,                      -- a third limited
    CASE WHEN i % 4 = 0 THEN 1 END,
    now() - interval '30 days',
    CASE WHEN i % 2 = 0 THEN now() + interval '365 days' END,
    true, i % 6 = 0, CASE WHEN i % 6 = 0 THEN 'g' || (i % 3) ELSE '' END, false, 0, 0, 1,
    0, 'flag', false, '', now(), now()
FROM generate_series(1, 100000) AS i
ON CONFLICT (code) DO NOTHING;

-- The named coupons: (re)defined on every run so an edited row cannot skew a benchmark.
INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    min_cart_minor, eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
VALUES
    ('BENCH25', '25% off, max $50', 'percentage', 'USD', 2500, NULL, 5000, '[]',
     NULL, '{}', '{}', '{}', '{}', false, NULL, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('HOT1000', 'hot coupon, 1000 uses', 'percentage', 'USD', 1000, NULL, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, 1000, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('PGHOT', 'pgbench hot row', 'percentage', 'USD', 1000, NULL, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, 2000000000, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now())
ON CONFLICT (code) DO UPDATE SET
    type = EXCLUDED.type, percent_bp = EXCLUDED.percent_bp, amount_minor = NULL,
    cap_minor = EXCLUDED.cap_minor, tiers = '[]', min_cart_minor = NULL,
    eligible_categories = '{}', eligible_skus = '{}', excluded_skus = '{}',
    eligible_segments = '{}', first_purchase_only = false,
    max_uses_total = EXCLUDED.max_uses_total, max_uses_per_user = NULL,
    valid_from = NULL, valid_to = NULL, active = true, stackable = false, stack_group = '',
    auto_apply = false, version = coupons_coupon.version + 1, updated_at = now();

-- One public code per coupon, the same string (what coupon_create does).
INSERT INTO coupons_code (code, max_uses, uses, expires_at, active, created_at, coupon_id,
                          customer_id)
SELECT c.code, NULL, 0, NULL, true, now(), c.id, NULL
  FROM coupons_coupon c
 WHERE NOT EXISTS (SELECT 1 FROM coupons_code k WHERE k.code = c.code)
ON CONFLICT (code) DO NOTHING;
UPDATE coupons_code SET max_uses = NULL, expires_at = NULL, active = true, customer_id = NULL
 WHERE code IN ('BENCH25', 'HOT1000', 'PGHOT');

-- History: 50,000 customers and 200,000 confirmed redemptions spread over the bench
-- coupons (two per coupon), so the redemption table and its statistics look like a
-- store's rather than an empty table's: with an empty, freshly analyzed table the planner
-- may pick the (coupon, order) index for the per-customer count and scan every redemption
-- of the hot coupon while holding its lock. Seeded once; reset.sql keeps it.
INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
SELECT 'seed-' || i, CASE WHEN i % 11 = 0 THEN ARRAY['premium_members']::varchar[]
                          ELSE '{}' END, 1 + i % 5, now() - interval '90 days'
  FROM generate_series(1, 50000) AS i
ON CONFLICT (external_id) DO NOTHING;

INSERT INTO coupons_redemption (id, coupon_id, code_id, customer_id, order_id, apply_id,
        status, currency, discount_minor, shipping_discount_minor, order_value_minor, lines,
        auto, idempotency_key, context, expires_at, created_at, confirmed_at)
SELECT gen_random_uuid(), k.coupon_id, k.id, cu.id, 'seed-o-' || g.i, gen_random_uuid(),
       'confirmed', 'USD', 500 + g.i % 2000, 0, 10000 + g.i % 20000, '[]', false, '', '{}',
       now() - interval '29 days', now() - interval '30 days', now() - interval '30 days'
  FROM generate_series(1, 200000) AS g(i)
  JOIN coupons_code k ON k.code = 'BC' || lpad((g.i % 100000 + 1)::text, 6, '0')
  JOIN coupons_customer cu ON cu.external_id = 'seed-' || (g.i * 7919 % 50000 + 1)
 WHERE NOT EXISTS (SELECT 1 FROM coupons_redemption WHERE order_id = 'seed-o-1');

-- Counters agree with the history (the check constraint allows it: 2 <= 100).
UPDATE coupons_coupon c SET uses = h.n, budget_used_minor = h.spent
  FROM (SELECT coupon_id, count(*) AS n,
               sum(discount_minor + shipping_discount_minor) AS spent
          FROM coupons_redemption
         WHERE order_id LIKE 'seed-o-%' GROUP BY coupon_id) h
 WHERE c.id = h.coupon_id AND (c.uses <> h.n OR c.budget_used_minor <> h.spent);
UPDATE coupons_code k SET uses = h.n
  FROM (SELECT code_id, count(*) AS n FROM coupons_redemption
         WHERE order_id LIKE 'seed-o-%' GROUP BY code_id) h
 WHERE k.id = h.code_id AND k.uses <> h.n;

COMMIT;
ANALYZE coupons_coupon;
ANALYZE coupons_code;
ANALYZE coupons_customer;
ANALYZE coupons_redemption;
