-- Put growth_load (the load test's own database) back to "just seeded" before a run:
-- only the seeded history stays among redemptions and customers, the named coupons'
-- counters go back to 0, no idempotency records. So `make load` can run again and again.
\set ON_ERROR_STOP on
BEGIN;
DELETE FROM coupons_redemption WHERE order_id NOT LIKE 'hist-o-%';
-- Active, and exempt from the leak detector (the load test's thousands of new customers
-- an hour would rightly trip it).
UPDATE coupons_coupon SET uses = 0, budget_used_minor = 0, active = true,
       disabled_reason = '', disabled_at = NULL, leak_threshold = 1000000000
 WHERE code IN ('LOAD25', 'LOAD10', 'LIMIT500', 'ONCE1');
UPDATE coupons_code SET uses = 0 WHERE code IN ('LOAD25', 'LOAD10', 'LIMIT500', 'ONCE1');
DELETE FROM coupons_customer c
 WHERE external_id NOT LIKE 'hist-%'
   AND NOT EXISTS (SELECT 1 FROM coupons_code k WHERE k.customer_id = c.id);
DELETE FROM core_idempotencyrecord;
COMMIT;
VACUUM (ANALYZE) coupons_coupon, coupons_code, coupons_redemption, coupons_customer,
    core_idempotencyrecord;
