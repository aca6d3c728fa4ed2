-- Load-test data for `make load` (load/run.sh), in its own database growth_load.
-- Idempotent: run on every `make load`; a re-run only redefines the named coupons.
--
-- The coupons the locust mix uses (load/locustfile.py):
--   LOAD25    25% off, cap $50, no limits              validate only (no live-state query)
--   LOAD10    10% off, max_uses_total = 10,000,000     most applies (never runs out)
--   LIMIT500  $5 off,  max_uses_total = 500            sells out during the run
--   ONCE1     15% off, cap $20, max_uses_per_user = 1  a small customer pool: repeats get
--                                                      customer_limit_reached
-- Plus history, so the redemption table and its planner statistics look like a store's
-- rather than an empty table's: 1,000 filler coupons (LH0001..LH1000), 10,000 customers
-- and 40,000 past confirmed redemptions (order ids 'hist-o-*'), seeded once and kept by
-- reset.sql.
\set ON_ERROR_STOP on
BEGIN;

INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    min_cart_minor, eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
VALUES
    ('LOAD25', 'load: 25% off, max $50', 'percentage', 'USD', 2500, NULL, 5000, '[]',
     NULL, '{}', '{}', '{}', '{}', false, NULL, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('LOAD10', 'load: 10% off, 10M uses', 'percentage', 'USD', 1000, NULL, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, 10000000, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('LIMIT500', 'load: $5 off, 500 uses', 'fixed', 'USD', NULL, 500, NULL, '[]',
     NULL, '{}', '{}', '{}', '{}', false, 500, NULL, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()),
    ('ONCE1', 'load: 15% off, max $20, once per customer', 'percentage', 'USD', 1500, NULL,
     2000, '[]', NULL, '{}', '{}', '{}', '{}', false, NULL, 1, NULL, NULL,
     true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now())
ON CONFLICT (code) DO UPDATE SET
    type = EXCLUDED.type, percent_bp = EXCLUDED.percent_bp,
    amount_minor = EXCLUDED.amount_minor, cap_minor = EXCLUDED.cap_minor, tiers = '[]',
    min_cart_minor = NULL, eligible_categories = '{}', eligible_skus = '{}',
    excluded_skus = '{}', eligible_segments = '{}', first_purchase_only = false,
    max_uses_total = EXCLUDED.max_uses_total, max_uses_per_user = EXCLUDED.max_uses_per_user,
    valid_from = NULL, valid_to = NULL, active = true, stackable = false, stack_group = '',
    auto_apply = false, version = coupons_coupon.version + 1, updated_at = now();

-- Filler coupons for the history (10% off, limit 1,000 each).
INSERT INTO coupons_coupon (
    code, description, type, currency, percent_bp, amount_minor, cap_minor, tiers,
    min_cart_minor, eligible_categories, eligible_skus, excluded_skus, eligible_segments,
    first_purchase_only, max_uses_total, max_uses_per_user, valid_from, valid_to,
    active, stackable, stack_group, auto_apply, priority, uses, version,
    budget_used_minor, farming_action, limit_by_identity, disabled_reason,
    created_at, updated_at)
SELECT 'LH' || lpad(i::text, 4, '0'), 'load history coupon ' || i, 'percentage', 'USD',
       1000, NULL, NULL, '[]', NULL, '{}', '{}', '{}', '{}', false, 1000, NULL,
       NULL, NULL, true, false, '', false, 0, 0, 1, 0, 'flag', false, '', now(), now()
  FROM generate_series(1, 1000) AS i
ON CONFLICT (code) DO NOTHING;

-- One public code per coupon, the same string (what coupon_create does).
INSERT INTO coupons_code (code, max_uses, uses, expires_at, active, created_at, coupon_id,
                          customer_id)
SELECT c.code, NULL, 0, NULL, true, now(), c.id, NULL
  FROM coupons_coupon c
 WHERE NOT EXISTS (SELECT 1 FROM coupons_code k WHERE k.code = c.code)
ON CONFLICT (code) DO NOTHING;
UPDATE coupons_code SET max_uses = NULL, expires_at = NULL, active = true, customer_id = NULL
 WHERE code IN ('LOAD25', 'LOAD10', 'LIMIT500', 'ONCE1');

INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
SELECT 'hist-' || i, '{}', 1 + i % 5, now() - interval '90 days'
  FROM generate_series(1, 10000) AS i
ON CONFLICT (external_id) DO NOTHING;

INSERT INTO coupons_redemption (id, coupon_id, code_id, customer_id, order_id, apply_id,
        status, currency, discount_minor, shipping_discount_minor, order_value_minor, lines,
        auto, idempotency_key, context, expires_at, created_at, confirmed_at)
SELECT gen_random_uuid(), k.coupon_id, k.id, cu.id, 'hist-o-' || g.i, gen_random_uuid(),
       'confirmed', 'USD', 500 + g.i % 2000, 0, 10000 + g.i % 20000, '[]', false, '', '{}',
       now() - interval '29 days', now() - interval '30 days', now() - interval '30 days'
  FROM generate_series(1, 40000) AS g(i)
  JOIN coupons_code k ON k.code = 'LH' || lpad((g.i % 1000 + 1)::text, 4, '0')
  JOIN coupons_customer cu ON cu.external_id = 'hist-' || (g.i * 7919 % 10000 + 1)
 WHERE NOT EXISTS (SELECT 1 FROM coupons_redemption WHERE order_id = 'hist-o-1');

-- Counters agree with the history.
UPDATE coupons_coupon c SET uses = h.n, budget_used_minor = h.spent
  FROM (SELECT coupon_id, count(*) AS n,
               sum(discount_minor + shipping_discount_minor) AS spent
          FROM coupons_redemption
         WHERE order_id LIKE 'hist-o-%' GROUP BY coupon_id) h
 WHERE c.id = h.coupon_id AND (c.uses <> h.n OR c.budget_used_minor <> h.spent);
UPDATE coupons_code k SET uses = h.n
  FROM (SELECT code_id, count(*) AS n FROM coupons_redemption
         WHERE order_id LIKE 'hist-o-%' GROUP BY code_id) h
 WHERE k.id = h.code_id AND k.uses <> h.n;

COMMIT;
