-- Put the bench database back to "just seeded" (growth_bench is the benchmark's own
-- database): only the seeded history stays among redemptions and customers, the named
-- coupons' counters go back to 0, no idempotency records. Run before each apply race and
-- each pgbench run so every run starts from the same state and the script can re-run.
\set ON_ERROR_STOP on
BEGIN;
DELETE FROM abuse_identityuse;
DELETE FROM coupons_redemption WHERE order_id NOT LIKE 'seed-o-%';
-- Active again, and never "leaked": the bench's applies come from thousands of new
-- customers an hour, which the leak detector would rightly stop.
UPDATE coupons_coupon SET uses = 0, budget_used_minor = 0, active = true,
       disabled_reason = '', disabled_at = NULL, leak_threshold = 1000000000 WHERE code IN ('BENCH25', 'HOT1000', 'PGHOT');
UPDATE coupons_code SET uses = 0 WHERE code IN ('BENCH25', 'HOT1000', 'PGHOT');
DELETE FROM coupons_customer c
 WHERE external_id NOT LIKE 'seed-%'
   AND NOT EXISTS (SELECT 1 FROM coupons_code k WHERE k.customer_id = c.id);
DELETE FROM core_idempotencyrecord;
COMMIT;
VACUUM (ANALYZE) coupons_coupon, coupons_code, coupons_redemption, coupons_customer,
    core_idempotencyrecord;
