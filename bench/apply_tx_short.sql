-- pgbench, for comparison with apply_tx.sql: the shortest possible hot-row critical
-- section. Only apply's write statement, in autocommit: the conditional UPDATE takes the
-- use (and the row lock: no earlier SELECT ... FOR UPDATE, no customer lock), bumps the
-- code and inserts the redemption; the lock is held for one round trip plus the commit.
-- The floor of what one hot row allows on this machine (docs/benchmarks.md).
WITH coupon AS (
    UPDATE coupons_coupon SET uses = uses + 1
     WHERE id = :hot AND uses < max_uses_total
 RETURNING id
), code AS (
    UPDATE coupons_code SET uses = uses + 1
     WHERE id = :hotcode AND EXISTS (SELECT 1 FROM coupon)
 RETURNING id
)
INSERT INTO coupons_redemption (id, order_id, apply_id, status, currency, discount_minor,
        shipping_discount_minor, order_value_minor, lines, auto, idempotency_key, context,
        expires_at, created_at, coupon_id, code_id, customer_id)
SELECT gen_random_uuid(), 'pg-' || gen_random_uuid(), gen_random_uuid(), 'reserved', 'USD',
       1000, 0, 10000, '[]', false, '', '{}', now() + interval '30 minutes', now(), coupon.id,
       code.id, NULL
  FROM coupon, code;
