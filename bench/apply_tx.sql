-- pgbench: the SQL of one coupon apply on a hot coupon, as coupons/services.py runs it
-- (redemption_apply -> _reserve, coupons/locks.py), without HTTP, Python or the
-- idempotency record: the ceiling for the HTTP apply race.
-- bench/run.sh passes -D hot=<PGHOT coupon id> -D hotcode=<its code id>; PGHOT allows
-- 2,000,000,000 uses, so it never sells out mid-run.
--
-- Outside the lock: a new customer (every call in the HTTP race is a new customer); its
-- id, unique, also names the order ('pg-<id>').
INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
VALUES ('pgc-' || gen_random_uuid(), '{}', 0, now())
RETURNING id AS cust \gset
-- The locked transaction: coupon, code, customer (+ its live uses and the order check),
-- then the conditional counters and the redemption insert as one statement, commit.
BEGIN;
SELECT * FROM coupons_coupon WHERE id = ANY(ARRAY[:hot]::bigint[]) ORDER BY id FOR UPDATE;
SELECT k.*, cu.external_id AS bound_external_id
  FROM coupons_code k LEFT JOIN coupons_customer cu ON cu.id = k.customer_id
 WHERE k.id = ANY(ARRAY[:hotcode]::bigint[]) ORDER BY k.id FOR UPDATE OF k;
SELECT cu.segments, cu.orders_count,
       COALESCE((SELECT json_object_agg(x.coupon_id, x.n) FROM (
                   SELECT r.coupon_id, count(*) AS n FROM coupons_redemption r
                    WHERE r.customer_id = cu.id AND r.coupon_id = ANY(ARRAY[:hot]::bigint[])
                      AND r.status IN ('reserved', 'confirmed')
                    GROUP BY r.coupon_id) x), '{}'),
       EXISTS (SELECT 1 FROM coupons_redemption r
                WHERE r.order_id = 'pg-' || :cust AND r.status IN ('reserved', 'confirmed'))
  FROM coupons_customer cu WHERE cu.id = :cust
   FOR UPDATE OF cu;
WITH coupon AS (
    UPDATE coupons_coupon SET uses = uses + 1
     WHERE id = :hot AND (max_uses_total IS NULL OR uses < max_uses_total)
    RETURNING id),
code AS (
    UPDATE coupons_code SET uses = uses + 1
     WHERE id = :hotcode AND (max_uses IS NULL OR uses < max_uses)
       AND EXISTS (SELECT 1 FROM coupon)
    RETURNING id)
INSERT INTO coupons_redemption
       (id, coupon_id, code_id, customer_id, order_id, apply_id, status, currency,
        discount_minor, shipping_discount_minor, order_value_minor, lines, auto,
        idempotency_key, context, expires_at, created_at)
SELECT gen_random_uuid(), :hot, code.id, :cust, 'pg-' || :cust, gen_random_uuid(), 'reserved',
       'USD', 1000, 0, 10000, '[]'::jsonb, false, '', '{}'::jsonb,
       now() + interval '30 minutes', now()
  FROM code
RETURNING id;
COMMIT;
